"""From a todo/ envelope to info/, local/ and remote/ (qmail-send.c todo_do, rewrite).

A todo file is qmail-queue's envelope: ``u<uid>\\0p<pid>\\0F<sender>\\0``
then ``T<recipient>\\0`` per recipient. qmail-send copies the ``F`` record to
``info/<id>`` and writes each recipient, rewritten, as ``T<addr>\\0`` into
``local/<id>`` or ``remote/<id>`` (INTERNALS). :func:`rewrite` decides which:

1. no ``@``: append ``@envnoathost``;
2. while the domain is in percenthack and the local part has a ``%``, turn
   ``user%host@domain`` into ``user@host``;
3. domain in locals: local, unchanged;
4. virtualdomains, tried on the whole address (``user@domain`` entries), the
   domain, each ``.suffix`` of the domain, then the empty key: a match with
   an empty value means "not virtual" (remote); otherwise the address becomes
   ``prepend-address`` and is local;
5. anything else is remote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.send.config import SendConfig, fold
from server.spawn import ChannelName


@dataclass(frozen=True, kw_only=True)
class Rewritten:
    channel: ChannelName
    address: str


def rewrite(recip: str, cfg: SendConfig) -> Rewritten:
    addr = recip
    at = addr.rfind("@")
    if at == -1:
        at = len(addr)
        addr = f"{addr}@{cfg.envnoathost}"
    while fold(addr[at + 1 :]) in cfg.percenthack:
        pct = addr.rfind("%", 0, at)
        if pct == -1:
            break
        addr = addr[:pct] + "@" + addr[pct + 1 : at]
        at = pct
    at = addr.rfind("@")
    if fold(addr[at + 1 :]) in cfg.locals:
        return Rewritten(channel="local", address=addr)
    for key in _vdom_keys(addr, at):
        prepend = cfg.vdoms.get(fold(key))
        if prepend is None:
            continue
        if not prepend:
            break
        return Rewritten(channel="local", address=f"{prepend}-{addr}")
    return Rewritten(channel="remote", address=addr)


def _vdom_keys(addr: str, at: int) -> list[str]:
    """The tails rewrite() looks up, in its order: whole, domain, .suffixes, ""."""
    keys = []
    for i in range(len(addr) + 1):
        if i == 0 or i == at + 1 or i == len(addr) or (i > at and addr[i] == "."):
            keys.append(addr[i:])
    return keys


class BadEnvelope(Exception):
    """An unknown record in a todo file (qmail-send logs a warning and leaves it).

    ``partial`` holds what was read before it: qmail has logged its ``info msg``
    lines by then.
    """

    def __init__(self, partial: Envelope) -> None:
        super().__init__("unknown record type")
        self.partial = partial


@dataclass(kw_only=True)
class Envelope:
    uid: int = 0
    pid: int = 0
    #: the F records as written (qmail copies each one it sees to info/)
    senders: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)


def _scan_ulong(text: str) -> int:
    digits = len(text) - len(text.lstrip("0123456789"))
    return int(text[:digits]) if digits else 0


def parse_envelope(data: bytes) -> Envelope:
    """The NUL-terminated records of a todo file; an unterminated tail is ignored."""
    env = Envelope()
    records = data.split(b"\0")
    for raw in records[:-1]:  # the last piece has no NUL after it
        record = raw.decode("latin-1")
        kind = record[:1]
        if kind == "u":
            env.uid = _scan_ulong(record[1:])
        elif kind == "p":
            env.pid = _scan_ulong(record[1:])
        elif kind == "F":
            env.senders.append(record[1:])
        elif kind == "T":
            env.recipients.append(record[1:])
        else:
            raise BadEnvelope(env)
    return env


@dataclass(frozen=True, kw_only=True)
class Split:
    """What todo processing writes: info/ contents and one file per channel used."""

    info: bytes
    chan: dict[ChannelName, bytes]


def split(env: Envelope, cfg: SendConfig) -> Split:
    info = b"".join(b"F" + s.encode("latin-1") + b"\0" for s in env.senders)
    chan: dict[ChannelName, bytearray] = {}
    for recip in env.recipients:
        rw = rewrite(recip, cfg)
        chan.setdefault(rw.channel, bytearray()).extend(b"T" + rw.address.encode("latin-1") + b"\0")
    return Split(info=info, chan={c: bytes(v) for c, v in chan.items()})
