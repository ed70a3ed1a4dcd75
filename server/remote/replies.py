"""Every text qmail-remote and qmail-rspawn print, as data (qmail-remote.c, qmail-rspawn.c).

A report is a letter, the text and (on the wire) a NUL. Texts that name the
peer are built by the small functions below from the same pieces qmail-remote
writes with ``out()``, ``outhost()`` and ``outsmtptext()``.
"""

from __future__ import annotations

# Message reports with fixed text (qmail-remote.c, temp_* and perm_*).
NOMEM = "ZOut of memory. (#4.3.0)\n"
OSERR = "ZSystem resources temporarily unavailable. (#4.3.0)\n"
NOCONN = "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"
READ = "ZUnable to read message. (#4.3.0)\n"
DNSCANON = "ZCNAME lookup failed temporarily. (#4.4.3)\n"
DNS_TEMP = "ZSorry, I couldn't find any host by that name. (#4.1.2)\n"
CHDIR = "ZUnable to switch to home directory. (#4.3.0)\n"
CONTROL = "ZUnable to read control files. (#4.3.0)\n"
PARTIALLINE = "DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n"
USAGE = "DI (qmail-remote) was invoked improperly. (#5.3.5)\n"
NOMX = "DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n"
AMBIGMX = (
    "DSorry. Although I'm listed as a best-preference MX or A for that host,\n"
    "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n"
)

# quit(prepend, append) pairs of smtp(): "<prepend><ip><append>.\n<smtptext>".
GREETING_FAILED = ("ZConnected to ", " but greeting failed")
HELO_REJECTED = ("ZConnected to ", " but my name was rejected")
SENDER_REJECTED_PERM = ("DConnected to ", " but sender was rejected")
SENDER_REJECTED_TEMP = ("ZConnected to ", " but sender was rejected")
NO_RECIPIENTS = ("DGiving up on ", "")
DATA_PERM = ("D", " failed on DATA command")
DATA_TEMP = ("Z", " failed on DATA command")
AFTER_DATA_PERM = ("D", " failed after I sent the message")
AFTER_DATA_TEMP = ("Z", " failed after I sent the message")
ACCEPTED = ("K", " accepted message")

# Recipient reports.
RCPT_OK = "r"
RCPT_PERM = "h"  # followed by "<ip> does not like recipient.\n<smtptext>"
RCPT_TEMP = "s"
RCPT_REJECTED = " does not like recipient.\n"

REMOTE_SAID = "Remote host said: "
POSSIBLE_DUPLICATE = "Possible duplicate! "

# qmail-rspawn.c report(); spawn.c's own texts are in server/spawnpipe.py.
RSPAWN_CRASHED = "Zqmail-remote crashed.\n"
RSPAWN_UNABLE_TEMP = "ZUnable to run qmail-remote.\n"
RSPAWN_UNABLE_PERM = "DUnable to run qmail-remote.\n"
RSPAWN_NO_OUTPUT = "Zqmail-remote produced no output.\n"


def perm_dns(host: bytes) -> bytes:
    """perm_dns: the host name with bytes outside 33..126 shown as ``?`` (outsafe)."""
    safe = bytes(b if 33 <= b <= 126 else 0x3F for b in host)
    return b"DSorry, I couldn't find any host named " + safe + b". (#5.1.2)\n"


def dropped(ip: str, critical: bool) -> bytes:
    """dropped(): the connection died (read or write failed or timed out)."""
    dup = POSSIBLE_DUPLICATE if critical else ""
    return f"ZConnected to {ip} but connection died. {dup}(#4.4.2)\n".encode()


def smtptext(text: bytes) -> bytes:
    """outsmtptext(): ``Remote host said: `` and the reply, NULs shown as ``?``."""
    if not text:
        return b""
    return REMOTE_SAID.encode() + text.replace(b"\0", b"?")


def quit_text(pair: tuple[str, str], ip: str, text: bytes) -> bytes:
    prepend, append = pair
    return f"{prepend}{ip}{append}.\n".encode() + smtptext(text)


def rcpt_report(letter: str, ip: str, text: bytes) -> bytes:
    return f"{letter}{ip}{RCPT_REJECTED}".encode() + smtptext(text)
