"""qmail-send's log lines, as data (qmail-send.c, qsutil.c, qmail-log(5)).

Each function returns one complete line WITHOUT its trailing newline; the
caller's log sink adds it (the daemon writes ``line + "\\n"`` to stdout, as
qmail-send writes to descriptor 0, which qmail-start points at the logger).

Untrusted text (envelope addresses, delivery reports) goes through
:func:`logsafe` first, as qmail's ``logsafe()`` does: a newline becomes ``/``;
space, ``%``, control characters and bytes above 126 become ``_``.
"""

from __future__ import annotations

from server.spawn import ChannelName

_NEWLINE = ord("\n")


def _safe_byte(b: int) -> str:
    if b == _NEWLINE:
        return "/"
    # qsutil.c issafe(): '%' is unsafe ("allman's code is crap"), and so is
    # anything outside 33..126.
    if b == ord("%") or b < 33 or b > 126:
        return "_"
    return chr(b)


#: every byte's safe form, all ASCII: one bytes.translate() does a whole line
_TABLE = "".join(_safe_byte(b) for b in range(256)).encode("ascii")


def logsafe(text: str | bytes) -> str:
    """qsutil.c logsafe(): one printable token. ``str`` is taken as latin-1 bytes."""
    data = text.encode("latin-1", "replace") if isinstance(text, str) else text
    return data.translate(_TABLE).decode("ascii")


def new_msg(msgid: int) -> str:
    return f"new msg {msgid}"


def info_msg(msgid: int, size: int, sender: str, qp: int, uid: int) -> str:
    return f"info msg {msgid}: bytes {size} from <{logsafe(sender)}> qp {qp} uid {uid}"


def starting_delivery(delid: int, msgid: int, channel: ChannelName, recip: str) -> str:
    return f"starting delivery {delid}: msg {msgid} to {channel} {logsafe(recip)}"


def delivery_success(delid: int, text: bytes) -> str:
    return f"delivery {delid}: success: {logsafe(text)}"


def delivery_deferral(delid: int, text: bytes) -> str:
    return f"delivery {delid}: deferral: {logsafe(text)}"


def delivery_failure(delid: int, text: bytes) -> str:
    return f"delivery {delid}: failure: {logsafe(text)}"


def report_mangled(delid: int) -> str:
    return f"delivery {delid}: report mangled, will defer"


def status(used: dict[ChannelName, int], limit: dict[ChannelName, int], exitasap: bool) -> str:
    line = (
        f"status: local {used['local']}/{limit['local']} remote {used['remote']}/{limit['remote']}"
    )
    return line + " exitasap" if exitasap else line


def bounce_msg(msgid: int, qp: int) -> str:
    return f"bounce msg {msgid} qp {qp}"


def end_msg(msgid: int) -> str:
    return f"end msg {msgid}"


def triple_bounce(bounce_fn: str) -> str:
    """``bounce_fn`` is the path relative to queue/, e.g. ``bounce/1234``."""
    return f"triple bounce: discarding {bounce_fn}"


STATUS_EXITING = "status: exiting"
INJECT_START_FAILED = "warning: unable to start qmail-queue, will try later"
INJECT_FAILED = "warning: trouble injecting bounce message, will try later"
REPORT_OUT_OF_RANGE = "warning: internal error: delivery report out of range"
CANNOT_START_CONTROLS = "alert: cannot start: unable to read controls"
CANNOT_START_HOME = "alert: cannot start: unable to switch to home directory"
CANNOT_START_QUEUE = "alert: cannot start: unable to switch to queue directory"
CANNOT_START_MUTEX = "alert: cannot start: unable to open mutex"
ALREADY_RUNNING = "alert: cannot start: qmail-send is already running"
REREAD_LOCALS_FAILED = "alert: unable to reread control/locals"
REREAD_VDOMS_FAILED = "alert: unable to reread control/virtualdomains"


def warning(what: str, fn: str, tail: str = "") -> str:
    """The ``warning: <what> <fn><tail>`` family, e.g. ``unable to stat``."""
    return f"warning: {what} {fn}{tail}"


WILL_TRY_AGAIN = "; will try again later"
DELIVERED_TWICE = "; message will be delivered twice!"
RETRIED_TOO_SOON = "; message will be retried too soon"


def unknown_record(fn: str, bang: bool) -> str:
    # qmail-send.c prints "!" after a chan file's name but not a todo file's.
    return f"warning: unknown record type in {fn}{'!' if bang else ''}"


def clean_failed(fn: str) -> str:
    return f"warning: qmail-clean unable to clean up {fn}"
