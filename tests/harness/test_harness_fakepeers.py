"""The fake SMTP peers: scripted replies per stage and attempt, and what they record."""

from __future__ import annotations

import asyncio
import smtplib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.fakepeers import FakePeers, serve
from harness.scenario import load_text
from harness.scenario.model import PeerScript, PeerSpec


def peers(**fields: object) -> FakePeers:
    script = PeerScript(**fields)  # type: ignore[arg-type]
    return FakePeers({"127.0.2.1": PeerSpec(ip="127.0.2.1", script=script)})


def talk(p: FakePeers, *lines: bytes) -> bytes:
    conn = p.connect("127.0.2.1", 25, timeout=30)
    out = conn.recv(1)
    for line in lines:
        conn.send(line)
        try:
            out += conn.recv(1)
        except TimeoutError:
            out += b"<timeout>"
            break
    conn.close()
    return out


def test_a_whole_delivery_is_recorded() -> None:
    p = peers()
    out = talk(
        p,
        b"EHLO me\r\n",
        b"MAIL FROM:<a@b>\r\n",
        b"RCPT TO:<c@d>\r\n",
        b"DATA\r\n",
        b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\n",
        b"QUIT\r\n",
    )
    assert out.startswith(b"220 127.0.2.1 ESMTP fake\r\n250-127.0.2.1\r\n250 PIPELINING\r\n")
    assert out.endswith(b"354 go ahead\r\n250 ok 1\r\n221 bye\r\n")
    [s] = p.sessions["127.0.2.1"]
    assert (s.helo, s.mail_from, s.rcpt, s.delivered) == ("me", "a@b", ["c@d"], True)
    assert s.data == b"Subject: x\n\n.dot\nbody\n"


def test_per_recipient_replies_and_attempts() -> None:
    [sc] = load_text("""
name: p
steps: []
peers:
  127.0.2.1:
    rcpt: {"*": 250 ok, no@d: 550 no such user}
    attempts: [{rcpt: 451 greylisted}]
""")
    p = FakePeers(sc.peers)
    first = talk(p, b"HELO x\r\n", b"MAIL FROM:<>\r\n", b"RCPT TO:<c@d>\r\n")
    assert first.endswith(b"451 greylisted\r\n")
    second = talk(
        p, b"HELO x\r\n", b"MAIL FROM:<>\r\n", b"RCPT TO:<c@d>\r\n", b"RCPT TO:<no@d>\r\n"
    )
    assert second.endswith(b"250 ok\r\n550 no such user\r\n")
    assert p.sessions["127.0.2.1"][1].rejected == ["no@d"]


def test_refuse_timeout_and_drop() -> None:
    with pytest.raises(ConnectionRefusedError):
        peers(refuse=True).connect("127.0.2.1", 25, timeout=1)
    with pytest.raises(ConnectionRefusedError):
        peers().connect("127.0.9.9", 25, timeout=1)
    with pytest.raises(TimeoutError):
        peers(timeout="connect").connect("127.0.2.1", 25, timeout=1)
    with pytest.raises(TimeoutError):
        peers(timeout="greeting").connect("127.0.2.1", 25, timeout=1).recv(1)
    assert peers(drop="greeting").connect("127.0.2.1", 25, timeout=1).recv(1) == b""
    stalled = peers(timeout="mail")
    assert talk(stalled, b"HELO x\r\n", b"MAIL FROM:<a@b>\r\n").endswith(b"<timeout>")
    dropped = peers(drop="rcpt")
    conn = dropped.connect("127.0.2.1", 25, timeout=1)
    conn.recv(1)
    conn.send(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
    assert conn.recv(1) == b"250 127.0.2.1\r\n250 ok\r\n"
    assert conn.recv(1) == b""
    with pytest.raises(BrokenPipeError):
        conn.send(b"DATA\r\n")


@pytest.mark.live
def test_the_loopback_peer_speaks_to_smtplib() -> None:
    p = peers()

    async def main() -> None:
        server = await serve(p, "127.0.2.1", "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await asyncio.to_thread(_send, port)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    [s] = p.sessions["127.0.2.1"]
    assert s.delivered and s.rcpt == ["to@x.example"] and b"hello" in (s.data or b"")


def _send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("from@x.example", ["to@x.example"], "Subject: t\r\n\r\nhello\r\n")


_COMMANDS = st.lists(
    st.sampled_from(
        [
            b"HELO x\r\n",
            b"EHLO y\r\n",
            b"MAIL FROM:<a@b>\r\n",
            b"MAIL FROM:<>\r\n",
            b"RCPT TO:<c@d>\r\n",
            b"RCPT TO:<no@d>\r\n",
            b"DATA\r\n",
            b"line\r\n",
            b"..dot\r\n",
            b".\r\n",
            b"NOOP\r\n",
            b"RSET\r\n",
            b"VRFY z\r\n",
            b"bare\n",
            b"\r\n",
        ]
    ),
    max_size=20,
)


def _replay(chunks: list[bytes]) -> tuple[bytes, object]:
    p = FakePeers(
        {
            "127.0.2.1": PeerSpec(
                ip="127.0.2.1", script=PeerScript(rcpt={"*": "250 ok", "no@d": "550 no"})
            )
        }
    )
    session = p.open("127.0.2.1", 25)
    out = session.pending()
    for chunk in chunks:
        if session.closed:
            break
        session.feed(chunk)
        out += session.pending()
    s = session
    return out, (s.helo, s.mail_from, s.rcpt, s.rejected, s.data, s.delivered, s.commands)


@settings(deadline=None)  # a busy CI machine is slow, not wrong
@given(_COMMANDS, st.binary(max_size=8))
def test_the_peer_parses_whole_bytewise_and_with_trailing_bytes_alike(
    commands: list[bytes], trailing: bytes
) -> None:
    data = b"".join(commands)
    whole = _replay([data])
    bytewise = _replay([data[i : i + 1] for i in range(len(data))])
    assert whole == bytewise
    with_tail = _replay([data + trailing.replace(b"\n", b"")])
    assert with_tail == whole  # an unfinished line is kept, not answered


def test_delays_move_the_virtual_clock_or_time_out() -> None:
    waited: list[float] = []
    [sc] = load_text("name: d\nsteps: []\npeers:\n  127.0.2.1: {delay: {greeting: 2m, end: 30m}}\n")
    p = FakePeers(sc.peers, waited.append)
    conn = p.connect("127.0.2.1", 25, timeout=60)
    assert conn.recv(1200).startswith(b"220 ") and waited == [120.0]
    conn.send(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
    assert conn.recv(1200).endswith(b"354 go ahead\r\n")
    conn.send(b"hi\r\n.\r\n")
    with pytest.raises(TimeoutError):
        conn.recv(1200)
    assert waited == [120.0, 1200.0]
    with pytest.raises(TimeoutError):
        conn.recv(1200)
    with pytest.raises(Exception, match="stage"):
        load_text("name: d\nsteps: []\npeers:\n  127.0.2.1: {delay: {lunch: 2m}}\n")


@pytest.mark.live
def test_the_aiosmtpd_peer_records_like_the_scripted_one() -> None:
    import socket

    from harness.fakepeers_aiosmtpd import controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    p = peers(rcpt={"*": "250 ok", "no@x.example": "550 no such user"})
    ctl = controller(p, "127.0.2.1", "127.0.0.1", port)
    ctl.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            refused = client.sendmail(
                "from@x.example", ["to@x.example", "no@x.example"], "Subject: t\r\n\r\nhello\r\n"
            )
    finally:
        ctl.stop()
    assert refused == {"no@x.example": (550, b"no such user")}
    [s] = p.sessions["127.0.2.1"]
    assert (s.mail_from, s.rcpt, s.rejected, s.delivered) == (
        "from@x.example",
        ["to@x.example"],
        ["no@x.example"],
        True,
    )
    assert b"hello\n" in (s.data or b"")
