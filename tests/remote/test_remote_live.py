"""qmail-remote over real sockets on loopback: dnslib DNS (UDP+TCP), aiosmtpd, dnsmasq."""

from __future__ import annotations

import io
import itertools
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from server.dns.qmaildns import DnsSoft, QmailDns
from server.dns.resolver import LibcResolver, ResolverConfig
from server.dns.transport import SocketDnsTransport
from server.programs import ProgramContext
from server.remote import replies as R
from server.remote.connect import SocketConnection, SocketConnector
from server.remote.program import World, run
from server.remote.tcpto import Tcpto
from server.runtime import virtual_runtime

from .livepeers import SmtpSink, dns_server, free_port, smtp_server
from .test_remote_program import make_home

pytestmark = pytest.mark.live

BIG = "".join(f'big.example. 300 IN TXT "{"x" * 60}{i}"\n' for i in range(12))
ZONE = (
    "far.example. 300 IN MX 10 mx.far.example.\n"
    "mx.far.example. 300 IN A 127.0.0.1\n"
    "refused.example. 300 IN MX 10 mx.refused.example.\n"
    "mx.refused.example. 300 IN A 127.0.0.1\n" + BIG
)


class PortMap(SocketConnector):
    """Real connections, with port 25 moved to where the test's server listens."""

    def __init__(self, port: int) -> None:
        super().__init__(10.0)
        self.port = port

    def connect(
        self, ip: str, port: int, *, timeout: float, local_ip: str | None = None
    ) -> SocketConnection:
        return super().connect(ip, self.port if port == 25 else port, timeout=timeout)


def world(home: Path, dns_port: int, connector: SocketConnector, patched: bool = False) -> World:
    ids = itertools.count(1)
    config = ResolverConfig(nameservers=(("127.0.0.1", dns_port),), timeout=2)
    return World(
        dns=QmailDns(LibcResolver(config, SocketDnsTransport(), lambda: next(ids)), patched),
        connector=connector,
        tcpto=Tcpto(home / "queue/lock/tcpto", lambda: int(time.time()), 1),
        local_ips=["192.0.2.1"],
        now=int(time.time()),
        pid=1,
    )


def remote(tmp_path: Path, w: World, host: str, recip: str, **controls: str) -> bytes:
    home = make_home(tmp_path, **controls)
    runtime, _ = virtual_runtime()
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())
    w.tcpto = Tcpto(home / "queue/lock/tcpto", lambda: int(time.time()), 1)
    argv = ["qmail-remote", host, "alice@me.example", recip]
    return run(argv, lambda: b"Subject: live\n\n.dot\nbody\n", ctx, w)


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    with dns_server(ZONE) as port:
        yield port


def test_resolver_tc_to_tcp_with_dnslib(dns_port: int, tmp_path: Path) -> None:
    unpatched = world(tmp_path, dns_port, SocketConnector()).dns
    with pytest.raises(DnsSoft):
        unpatched.dns_cname("big.example")
    patched = world(tmp_path, dns_port, SocketConnector(), patched=True).dns
    assert patched.dns_cname("big.example") == ("big.example", 0)
    assert [ix.ip for ix in patched.dns_mxip("far.example", 0)[0]] == ["127.0.0.1"]


def test_delivery_through_mx_to_aiosmtpd(dns_port: int, tmp_path: Path) -> None:
    sink = SmtpSink()
    with smtp_server(sink) as smtp_port:
        out = remote(
            tmp_path,
            world(tmp_path, dns_port, PortMap(smtp_port)),
            "far.example",
            "bob@far.example",
        )
    assert out.startswith(b"r\0K127.0.0.1 accepted message.\nRemote host said: 250 ")
    assert sink.messages == [b"Subject: live\r\n\r\n.dot\r\nbody\r\n"]


def test_rejections_from_aiosmtpd(dns_port: int, tmp_path: Path) -> None:
    sink = SmtpSink(rcpt_reply="550 5.1.1 no such user")
    with smtp_server(sink) as smtp_port:
        w = world(tmp_path, dns_port, PortMap(smtp_port))
        out = remote(tmp_path / "a", w, "far.example", "bob@far.example")
        assert out == (
            b"h127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n\0"
            b"DGiving up on 127.0.0.1.\n\0"
        )
        sink.rcpt_reply, sink.data_reply = "250 OK", "451 4.3.0 try later"
        out = remote(tmp_path / "b", w, "far.example", "bob@far.example")
        assert out.split(b"\0")[1] == (
            b"Z127.0.0.1 failed after I sent the message.\nRemote host said: 451 4.3.0 try later\n"
        )


def test_smtproutes_with_port(dns_port: int, tmp_path: Path) -> None:
    sink = SmtpSink()
    with smtp_server(sink) as smtp_port:
        w = world(tmp_path, dns_port, SocketConnector(10.0))
        out = remote(
            tmp_path, w, "elsewhere.example", "bob@elsewhere.example",
            smtproutes=f":mx.far.example:{smtp_port}\n",
        )  # fmt: skip
    assert out.split(b"\0")[1].startswith(b"K127.0.0.1 accepted message.")


def test_connection_refused(dns_port: int, tmp_path: Path) -> None:
    w = world(tmp_path, dns_port, PortMap(free_port()))
    assert remote(tmp_path, w, "far.example", "bob@far.example") == R.NOCONN.encode() + b"\0"


@contextmanager
def dropper() -> Iterator[int]:
    """Accepts connections and closes them at once."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


def test_dropped_connection(dns_port: int, tmp_path: Path) -> None:
    with dropper() as port:
        out = remote(
            tmp_path, world(tmp_path, dns_port, PortMap(port)), "far.example", "b@far.example"
        )
    assert out == b"ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\0"


@contextmanager
def dnsmasq(port: int, args: list[str]) -> Iterator[None]:
    binary = shutil.which("dnsmasq")
    assert binary is not None
    proc = subprocess.Popen(
        [binary, "--no-resolv", "--no-hosts", "--conf-file=/dev/null", f"--port={port}",
         "--listen-address=127.0.0.1", "--bind-interfaces", "--keep-in-foreground",
         "--pid-file=", "--log-facility=-", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    # dnsmasq binds its sockets before it logs "started": wait on that line, no polling
    watchdog = threading.Timer(10, proc.kill)
    watchdog.start()
    try:
        first = proc.stderr.readline()
        watchdog.cancel()
        assert b"started" in first, first
        yield
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(5)
        proc.stderr.close()


@pytest.mark.external
@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq is not installed")
def test_dnsmasq_tc_to_tcp(tmp_path: Path) -> None:
    """Debian's dnsmasq serves a local zone; its TC answer sends us to TCP, as with glibc."""
    port = free_port()
    txt = [f'--txt-record=big.test,"{"x" * 60}{i}"' for i in range(12)]
    records = ["--mx-host=mail.test,mx.mail.test,10", "--host-record=mx.mail.test,127.0.0.1"]
    with dnsmasq(port, records + txt):
        unpatched = world(tmp_path, port, SocketConnector()).dns
        with pytest.raises(DnsSoft):
            unpatched.dns_cname("big.test")
        patched = world(tmp_path, port, SocketConnector(), patched=True).dns
        assert patched.dns_cname("big.test") == ("big.test", 0)
        assert [ix.ip for ix in patched.dns_mxip("mail.test", 0)[0]] == ["127.0.0.1"]


def _process_home(tmp_path: Path, dns_port: int, smtp_port: int) -> Path:
    home = make_home(tmp_path, smtproutes=f"far.example:mx.far.example:{smtp_port}\n")
    (home / ".qmail-sim").mkdir()
    (home / ".qmail-sim" / "resolv.conf").write_text(f"nameserver 127.0.0.1:{dns_port}\n")
    return home


def test_bin_qmail_remote_as_a_process(dns_port: int, tmp_path: Path) -> None:
    sink = SmtpSink()
    with smtp_server(sink) as smtp_port:
        home = _process_home(tmp_path, dns_port, smtp_port)
        argv = ["qmail-remote", "far.example", "a@me.example", "bob@far.example"]
        done = subprocess.run(
            [sys.executable, "-m", "server", "--home", str(home), *argv],
            input=b"Subject: p\n\nx\n", capture_output=True, timeout=60, check=True,
        )  # fmt: skip
    assert done.stdout.startswith(b"r\0K127.0.0.1 accepted message.\nRemote host said: 250 ")
    assert done.stdout.endswith(b"\0") and sink.messages == [b"Subject: p\r\n\r\nx\r\n"]


def test_qmail_rspawn_pipe_protocol(dns_port: int, tmp_path: Path) -> None:
    from server.remote import rspawn

    sink = SmtpSink()
    with smtp_server(sink) as smtp_port:
        home = _process_home(tmp_path, dns_port, smtp_port)
        (home / "queue" / "mess" / "3").mkdir(parents=True)
        (home / "queue" / "mess" / "3" / "26").write_bytes(b"Subject: s\n\nbody\n")
        runtime, _ = virtual_runtime()
        ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())
        out = io.BytesIO()
        stdin = io.BytesIO(b"\x05" + b"3/26\0a@me.example\0bob@far.example\0")
        assert rspawn.main(["qmail-rspawn"], {}, stdin, out, ctx) == 0
    data = out.getvalue()
    assert data[:1] == bytes([120])  # conf-spawn
    assert data[1:].startswith(b"\x05K127.0.0.1 accepted message.\nRemote host said: 250 ")
    assert data.endswith(b"\0")
