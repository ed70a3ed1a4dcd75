"""qmail-smtpd's ``addrparse()``: the address in a MAIL or RCPT argument.

What qmail does, and so what we do (qmail-smtpd.c):

* If the argument holds a ``<`` anywhere, the address starts after the first
  one and ends at the first unquoted ``>``. Otherwise ("partner should go read
  rfc 821") it starts after the first ``:`` and any spaces and ends at the
  first unquoted space.
* A leading source route ``@a,@b:`` is dropped up to and including the first
  ``:``.
* Backslash escapes the next byte; double quotes toggle quoting and are
  removed. A missing terminator is not an error.
* ``box@[d.d.d.d]`` where d.d.d.d is one of this host's addresses becomes
  ``box@<localiphost>`` (ip_scanbracket accepts any run of digits per part and
  keeps the low 8 bits, as ``ip->d[n] = u`` does).
* An address of 900 bytes or more (counting the C string's NUL, ``addr.len >
  900``) is a syntax error.

Everything is bytes: qmail never decodes an address.
"""

from __future__ import annotations

from collections.abc import Callable

from server.scan import scan_ulong

#: addr.len > 900 with the terminating NUL counted (addrparse()).
MAX_ADDRESS = 899

IPv4 = tuple[int, int, int, int]


def _start(arg: bytes) -> tuple[bytes, int | None]:
    """The text after ``<`` (terminator ``>``) or after ``:`` (terminator space)."""
    lt = arg.find(b"<")
    if lt >= 0:
        return arg[lt + 1 :], ord(">")
    colon = arg.find(b":")
    rest = arg[colon + 1 :] if colon >= 0 else b""
    return rest.lstrip(b" "), ord(" ")


def _strip_route(arg: bytes) -> bytes:
    if not arg.startswith(b"@"):
        return arg
    colon = arg.find(b":")
    return arg[colon + 1 :] if colon >= 0 else b""


def _unquote(arg: bytes, terminator: int | None) -> bytes:
    out = bytearray()
    escaped = quoted = False
    for ch in arg:
        if escaped:
            out.append(ch)
            escaped = False
        elif not quoted and ch == terminator:
            break
        elif ch == 0x5C:  # backslash
            escaped = True
        elif ch == 0x22:  # double quote
            quoted = not quoted
        else:
            out.append(ch)
    return bytes(out)


def scan_bracket(text: bytes) -> tuple[IPv4, int] | None:
    """ip_scanbracket: ``[d.d.d.d]`` at the start of ``text`` → (ip, length) or None."""
    if not text.startswith(b"["):
        return None
    pos = 1
    parts: list[int] = []
    for i in range(4):
        if i:
            if text[pos : pos + 1] != b".":
                return None
            pos += 1
        value, used = scan_ulong(text[pos:])
        if not used:
            return None
        parts.append(value & 0xFF)
        pos += used
    if text[pos : pos + 1] != b"]":
        return None
    return (parts[0], parts[1], parts[2], parts[3]), pos + 1


def localiphost(addr: bytes, liphost: bytes, is_me: Callable[[IPv4], bool]) -> bytes:
    """Replace a trailing ``@[my.ip]`` by ``@liphost`` (done before rcpthosts)."""
    at = addr.rfind(b"@")
    if at < 0:
        return addr
    found = scan_bracket(addr[at + 1 :])
    if found is None:
        return addr
    ip, length = found
    if at + 1 + length != len(addr) or not is_me(ip):
        return addr
    return addr[: at + 1] + liphost


def addrparse(
    arg: bytes,
    *,
    liphost: bytes | None = None,
    is_me: Callable[[IPv4], bool] = lambda ip: False,
) -> bytes | None:
    """The address in ``arg``, or None for qmail's ``555 syntax error``."""
    text, terminator = _start(arg)
    addr = _unquote(_strip_route(text), terminator)
    if liphost is not None:
        addr = localiphost(addr, liphost, is_me)
    if len(addr) > MAX_ADDRESS:
        return None
    return addr
