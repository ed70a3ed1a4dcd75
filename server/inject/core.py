"""qmail-inject's work on one message, without I/O (qmail-inject.c, qmail-header(5)).

An :class:`Injector` takes the ``-f`` sender and argument recipients, then
the header fields one by one (:meth:`Injector.field`), and finally builds
the new header (:meth:`Injector.finish`): ``Return-Path`` (only with -n),
``Date``, ``Message-ID``, ``From`` and ``Cc: recipient list not shown: ;``
where the message has none, or their ``Resent-`` forms when any Resent-
field is present, then ``Mail-Followup-To`` and the fields it kept.

Address fields are rewritten (:class:`~server.inject.addresses.Rewriter`)
and refolded; To, Cc, Bcc and Apparently-To (or their Resent- forms)
collect header recipients. Bcc, Resent-Bcc, Return-Path and Content-Length
are not kept. A Return-Path field sets the envelope sender unless -f did.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from server.envget import env_bytes
from server.inject.addresses import Names, Rewriter
from server.inject.headers import H, date_field, known, msgid_field, valid
from server.inject.token822 import ParseError, T, Token, addrlist, parse, unparse, unquote
from server.quote import quote2_bytes, quote_need_bytes


class InjectError(Exception):
    """A fatal error: ``qmail-inject: fatal: <text>``, exit ``code``.

    ``text`` is everything after "fatal: ", with the newline qmail prints (or
    not: "unable to parse this line:" echoes the line as it was).
    """

    def __init__(self, text: bytes, code: int) -> None:
        super().__init__(text.decode("utf-8", "replace"))
        self.text = text
        self.code = code


def _cannot_parse(line: bytes) -> InjectError:
    # doordie(): the line as it was, with no newline added
    return InjectError(b"unable to parse this line:\n" + line, 100)


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who is sending, from the environment (qmail-inject(8), ENVIRONMENT VARIABLES)."""

    user: bytes
    host: bytes | None
    return_user: bytes
    return_host: bytes | None
    fullname: bytes | None
    flags: frozenset[str] = frozenset()  # QMAILINJECT letters: c s f i r m

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Identity:
        # An empty variable counts: only an unset one falls through (env_get).
        user = env_bytes(env, "QMAILUSER", "MAILUSER", "USER", "LOGNAME")
        user = b"anonymous" if user is None else user
        host = env_bytes(env, "QMAILHOST", "MAILHOST")
        return_user = env_bytes(env, "QMAILSUSER")
        return_host = env_bytes(env, "QMAILSHOST")
        return cls(
            user=user,
            host=host,
            return_user=user if return_user is None else return_user,
            return_host=host if return_host is None else return_host,
            fullname=env_bytes(env, "QMAILNAME", "MAILNAME", "NAME"),
            flags=frozenset(env.get("QMAILINJECT", "")) & frozenset("csfirm"),
        )


#: Header types -> (lists their addresses go to), per doheaderfield().
_COLLECT: dict[H, tuple[str, ...]] = {
    H.TO: ("header", "tocc"),
    H.CC: ("header", "tocc"),
    H.BCC: ("header",),
    H.APPARENTLYTO: ("header",),
    H.R_TO: ("resent",),
    H.R_CC: ("resent",),
    H.R_BCC: ("resent",),
}
_SENDERLIKE = frozenset(
    {H.SENDER, H.FROM, H.REPLYTO, H.RETURNRECEIPTTO, H.ERRORSTO}
    | {H.R_SENDER, H.R_FROM, H.R_REPLYTO}
)
_NOT_KEPT = frozenset({H.BCC, H.R_BCC, H.RETURNPATH, H.CONTENTLENGTH})
_RESENT = frozenset({H.R_SENDER, H.R_FROM, H.R_REPLYTO, H.R_TO, H.R_CC, H.R_BCC})
_RESENT |= {H.R_DATE, H.R_MESSAGEID}


@dataclass
class Injector:
    identity: Identity
    names: Names
    now: int
    pid: int
    patches: Collection[str] = frozenset()
    env: Mapping[str, str] = field(default_factory=dict)
    home: Path | None = None  # for the zone file standing for /etc/localtime
    mft: frozenset[bytes] | None = None  # QMAILMFTFILE's addresses, lower case
    sender: bytes | None = None
    seen: set[H] = field(default_factory=set)
    kept: list[bytes] = field(default_factory=list)
    lists: dict[str, list[bytes]] = field(
        default_factory=lambda: {"args": [], "header": [], "tocc": [], "resent": []}
    )

    rewriter: Rewriter = field(init=False)

    def __post_init__(self) -> None:
        n = self.names
        try:
            self.rewriter = Rewriter.from_names(n.defaulthost, n.defaultdomain, n.plusdomain)
        except ParseError as exc:
            raise _cannot_parse(exc.data) from exc

    # -- the envelope -----------------------------------------------------------

    def option_sender(self, arg: bytes) -> None:
        """-f: the sender, quoted, parsed and rewritten as one address."""
        text = quote2_bytes(arg)
        self.sender = unquote(self.rewriter(self._parse(text)))

    def argument_recipient(self, arg: bytes) -> None:
        """dorecip(): a recipient from the command line."""
        try:
            tokens = parse(quote2_bytes(arg))
        except ParseError as exc:
            raise InjectError(b"unable to parse address: " + arg + b"\n", 100) from exc
        self.lists["args"].append(unquote(self.rewriter(tokens)))

    def recipients(self, from_header: bool) -> list[bytes]:
        """exitnicely(): argument recipients, then the header's (Resent- ones if any)."""
        found = list(self.lists["args"])
        if from_header:
            found += self.lists["resent" if self.resent else "header"]
        return found

    @property
    def resent(self) -> bool:
        return bool(self.seen & _RESENT)

    # -- the header ---------------------------------------------------------------

    def _parse(self, line: bytes) -> list[Token]:
        try:
            return parse(line)
        except ParseError as exc:
            raise _cannot_parse(line) from exc

    def _rewrite_field(self, line: bytes, rewrite: Callable[[list[Token]], list[Token]]) -> bytes:
        try:
            tokens = addrlist(self._parse(line), rewrite)
        except ParseError as exc:
            raise _cannot_parse(line) from exc
        return unparse(tokens)

    def _collector(self, kind: H) -> Callable[[list[Token]], list[Token]]:
        targets = _COLLECT.get(kind, ())

        def rewrite(addr: list[Token]) -> list[Token]:
            addr = self.rewriter(addr)
            for name in targets:
                self.lists[name].append(unquote(addr))
            if kind is H.RETURNPATH:
                self._set_return(addr)
            return addr

        return rewrite

    def _set_return(self, addr: list[Token]) -> None:
        """setreturn(): the first Return-Path address seen sets the sender."""
        if self.sender is None:
            self.sender = unquote(addr) + (b"-@[]" if "r" in self.identity.flags else b"")

    def field(self, line: bytes) -> None:
        """doheaderfield(): take one header field (with its continuation lines)."""
        kind = known(line)
        flags = self.identity.flags
        if (
            (kind is H.FROM and "f" in flags)
            or (kind is H.MESSAGEID and "i" in flags)
            or (kind is H.RETURNPATH and "s" in flags)
        ):
            return
        if kind is not H.UNKNOWN:
            self.seen.add(kind)
        elif not valid(line):
            raise InjectError(b"invalid header field: " + line, 100)
        if kind in _COLLECT or kind in _SENDERLIKE or kind is H.RETURNPATH:
            line = self._rewrite_field(line, self._collector(kind))
        if kind not in _NOT_KEPT:
            self.kept.append(line)

    # -- new fields ---------------------------------------------------------------

    def _default_from(self) -> bytes:
        """defaultfrommake(): ``From: "Full Name" <user@host>`` or the comment style."""
        me = self.identity
        comment_style = "c" in me.flags
        user = Token(T.QUOTE if quote_need_bytes(me.user) else T.ATOM, me.user)
        tokens = [Token(T.ATOM, b"From"), Token(T.COLON)]
        if me.fullname is not None and not comment_style:
            tokens += [Token(T.QUOTE, me.fullname), Token(T.LEFT)]
        tokens.append(user)
        if me.host is not None:
            tokens += [Token(T.AT), Token(T.ATOM, me.host)]
        if me.fullname is not None:
            tokens.append(Token(T.COMMENT, me.fullname) if comment_style else Token(T.RIGHT))
        return self._rewrite_field(unparse(tokens), self.rewriter)

    def _default_return_path(self) -> None:
        """dodefaultreturnpath(): the sender from QMAILSUSER/QMAILSHOST and VERP flags."""
        me = self.identity
        user = me.return_user
        if "m" in me.flags:
            user += b"-%d.%d" % (self.now, self.pid)
        if "r" in me.flags:
            user += b"-"
        tokens = [Token(T.ATOM, b"Return-Path"), Token(T.COLON), Token(T.QUOTE, user)]
        if me.return_host is not None:
            tokens += [Token(T.AT), Token(T.ATOM, me.return_host)]
        self._rewrite_field(unparse(tokens), self._collector(H.RETURNPATH))

    def _followup(self) -> bytes:
        """finishmft(): Mail-Followup-To when To/Cc name a list from QMAILMFTFILE."""
        tocc = self.lists["tocc"]
        if self.mft is None or H.MAILFOLLOWUPTO in self.seen:
            return b""
        if not any(a.lower() in self.mft for a in tocc):
            return b""
        return (
            b"Mail-Followup-To: " + b",\n  ".join(quote2_bytes(a) for a in reversed(tocc)) + b"\n"
        )

    def finish(self, *, print_return_path: bool) -> bytes:
        """finishheader(): the new fields, then the kept ones."""
        if self.sender is None:
            self._default_return_path()
        assert self.sender is not None
        out = []
        if print_return_path:
            out.append(b"Return-Path: <" + quote2_bytes(self.sender) + b">\n")
        prefix = b"Resent-" if self.resent else b""
        kinds = (H.R_DATE, H.R_MESSAGEID, H.R_FROM, H.R_TO, H.R_CC)
        if not self.resent:
            kinds = (H.DATE, H.MESSAGEID, H.FROM, H.TO, H.CC)
        date, msgid, from_, to, cc = kinds
        if date not in self.seen:
            out.append(prefix + date_field(self.now, self.patches, self.env, self.home))
        if msgid not in self.seen:
            out.append(prefix + msgid_field(self.now, self.pid, self.names.idhost))
        if from_ not in self.seen:
            out.append(prefix + self._default_from())
        if to not in self.seen and cc not in self.seen:
            out.append(prefix + b"Cc: recipient list not shown: ;\n")
        if not self.resent:
            out.append(self._followup())
        return b"".join(out + self.kept)
