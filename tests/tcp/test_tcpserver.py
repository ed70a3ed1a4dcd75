"""tcpserver: options, environment, rules and concurrency; live on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from server import cdb
from server.tcp.environ import Endpoints, decision_line, safe, tcp_environ, with_rules
from server.tcp.rules import compile_rules, decode
from server.tcp.tcpserver import (
    RulesUnreadable,
    TcpServer,
    check_rules,
    parse_args,
    serve,
)

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


def _rules(tmp_path: Path, text: bytes) -> Path:
    path = tmp_path / "rules.cdb"
    cdb.write(path, compile_rules(text))
    return path


def _run(coro: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro(), timeout=20)

    return asyncio.run(bounded())


# --- pure parts ---------------------------------------------------------------


def test_parse_args() -> None:
    config, program = parse_args(
        ["tcpserver", "-v", "-c", "5", "-x", "r.cdb", "-X", "-H", "-R", "-l", "0", "0", "2525",
         "prog", "-x", "arg"]
    )  # fmt: skip
    assert program == ["prog", "-x", "arg"]
    assert (config.host, config.port, config.limit, config.verbosity) == ("0.0.0.0", 2525, 5, 2)
    assert config.rules == Path("r.cdb") and config.allow_missing_rules
    assert not config.remote_host and config.local_name == "0"
    config, _ = parse_args(["tcpserver", "-q", "-B", "hi\r\n", "127.0.0.1", "smtp", "p"])
    assert (config.port, config.verbosity, config.banner) == (25, 0, b"hi\r\n")
    config, _ = parse_args(["tcpserver", "-c", "x", "", "0", "p"])
    assert (config.host, config.limit) == ("0.0.0.0", 0)


@pytest.mark.parametrize(
    "argv", [["tcpserver"], ["tcpserver", "h", "1"], ["tcpserver", "-z", "h", "1", "p"]]
)
def test_usage(argv: list[str]) -> None:
    from server.tcp.tcpserver import UsageError

    with pytest.raises(UsageError):
        parse_args(argv)


def test_environment_sets_and_removes() -> None:
    base = {"PATH": "/bin", "TCPREMOTEHOST": "stale", "TCPREMOTEINFO": "stale"}
    ends = Endpoints(local_ip="127.0.0.1", local_port=25, remote_ip="127.0.0.2", remote_port=4000)
    env = tcp_environ(base, ends)
    assert env == {
        "PATH": "/bin",
        "PROTO": "TCP",
        "TCPLOCALIP": "127.0.0.1",
        "TCPLOCALPORT": "25",
        "TCPREMOTEIP": "127.0.0.2",
        "TCPREMOTEPORT": "4000",
    }
    decision = decode("127.", b"+RELAYCLIENT=\0+TCPLOCALHOST=x\0")
    assert with_rules(env, decision)["RELAYCLIENT"] == ""
    assert with_rules(env, decision)["TCPLOCALHOST"] == "x"


def test_log_line_and_safe() -> None:
    ends = Endpoints(
        local_ip="127.0.0.1", local_port=25, remote_ip="127.0.0.2", remote_port=4000,
        local_host="mx", remote_host="a:b%c d", remote_info="joe",
    )  # fmt: skip
    assert (
        decision_line(7, False, ends)
        == "tcpserver: ok 7 mx:127.0.0.1:25 a?b?c?d:127.0.0.2:joe:4000"
    )
    assert safe("x" * 100) == "x" * 100 + "..."
    assert safe("\xe9") == "?"


def test_check_rules(tmp_path: Path) -> None:
    missing = tmp_path / "none.cdb"
    with pytest.raises(RulesUnreadable):
        check_rules(missing, "1.2.3.4", None, None)
    assert check_rules(missing, "1.2.3.4", None, None, allow_missing=True) is None
    (tmp_path / "dir.cdb").mkdir()
    with pytest.raises(RulesUnreadable):
        check_rules(tmp_path / "dir.cdb", "1.2.3.4", None, None, allow_missing=True)
    rules = _rules(tmp_path, b"1.2.:deny\n")
    decision = check_rules(rules, "1.2.3.4", None, None)
    assert decision is not None and decision.deny
    assert check_rules(None, "1.2.3.4", None, None) is None


# --- live, in-process handler ----------------------------------------------------


async def _client(port: int, send: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        if send:
            writer.write(send)
            await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.live
def test_handler_gets_tcp_environment_and_rules(tmp_path: Path) -> None:
    rules = _rules(tmp_path, b"127.0.0.:allow,RELAYCLIENT=\"\",GREETING='hi'\n:deny\n")
    seen: list[dict[str, str]] = []

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        seen.append(env)
        writer.write(b"hello " + env["TCPREMOTEIP"].encode() + b"\n")
        await writer.drain()

    async def scenario() -> tuple[bytes, int]:
        server = await serve(LOOPBACK, 0, handler, rules, 5, base_env={"TCPREMOTEHOST": "x"})
        try:
            return await _client(server.port), server.port
        finally:
            await server.close()

    data, port = _run(scenario)
    assert data == b"hello 127.0.0.1\n"
    env = seen[0]
    assert env["PROTO"] == "TCP" and env["TCPLOCALIP"] == LOOPBACK
    assert env["TCPLOCALPORT"] == str(port)
    assert env["RELAYCLIENT"] == "" and env["GREETING"] == "hi"
    assert "TCPREMOTEHOST" not in env and "TCPREMOTEINFO" not in env
    assert int(env["TCPREMOTEPORT"]) > 0


@pytest.mark.live
def test_deny_closes_the_connection_with_banner_and_log(tmp_path: Path) -> None:
    rules = _rules(tmp_path, b"=bad.example:deny\n")
    log: list[str] = []
    called: list[bool] = []

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        called.append(True)

    async def resolver(ip: str) -> str | None:
        return "bad.example" if ip == LOOPBACK else None

    async def scenario() -> bytes:
        server = await serve(
            LOOPBACK, 0, handler, rules, 5,
            banner=b"banner\r\n", resolver=resolver, local_name="mx", verbosity=2, log=log.append,
        )  # fmt: skip
        try:
            return await _client(server.port)
        finally:
            await server.close()

    assert _run(scenario) == b"banner\r\n"
    assert not called
    assert log[0] == "tcpserver: status: 0/5"
    assert log[1] == "tcpserver: status: 1/5"
    assert log[2] == "tcpserver: pid 1 from 127.0.0.1"
    assert log[3].startswith("tcpserver: deny 1 mx:127.0.0.1:")
    assert ":bad.example:127.0.0.1::" in log[3].replace(" ", ":")
    assert log[4:] == ["tcpserver: end 1 status 25600", "tcpserver: status: 0/5"]


@pytest.mark.live
def test_verbose_lines_of_a_program_carry_its_pid() -> None:
    # tcpserver.c forks, and the child logs "pid" and "ok" before it execs the
    # program: every line of the connection names the program's own pid.
    log: list[str] = []

    async def scenario() -> bytes:
        server = await serve(
            LOOPBACK, 0, ["/bin/sh", "-c", "echo $$"], None, 5,
            local_name="mx", verbosity=2, log=log.append,
        )  # fmt: skip
        try:
            return await _client(server.port)
        finally:
            await server.close()

    pid = int(_run(scenario))
    assert log[2] == f"tcpserver: pid {pid} from 127.0.0.1"
    assert log[3].startswith(f"tcpserver: ok {pid} mx:127.0.0.1:")
    assert log[4:] == [f"tcpserver: end {pid} status 0", "tcpserver: status: 0/5"]


@pytest.mark.live
def test_missing_rules_drop_unless_allowed(tmp_path: Path) -> None:
    log: list[str] = []

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        writer.write(b"served\n")

    async def scenario(allow: bool) -> bytes:
        server = await serve(
            LOOPBACK,
            0,
            handler,
            tmp_path / "none.cdb",
            5,
            allow_missing_rules=allow,
            log=log.append,
        )
        try:
            return await _client(server.port)
        finally:
            await server.close()

    assert _run(lambda: scenario(False)) == b""
    assert log == [
        f"tcpserver: warning: dropping connection, unable to read {tmp_path}/none.cdb: "
        "file does not exist"
    ]
    assert _run(lambda: scenario(True)) == b"served\n"


@pytest.mark.live
def test_concurrency_limit_holds_back_accept() -> None:
    release = asyncio.Event
    state: dict[str, int] = {"running": 0, "peak": 0}

    async def scenario() -> list[bytes]:
        gate = release()

        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
        ) -> None:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            await gate.wait()
            writer.write(env["TCPREMOTEPORT"].encode())
            state["running"] -= 1

        server: TcpServer = await serve(LOOPBACK, 0, handler, None, 2)
        try:
            clients = [asyncio.create_task(_client(server.port)) for _ in range(5)]
            while state["running"] < 2:
                await asyncio.sleep(0)
            for _ in range(50):  # let the loop run: a third handler must not start
                await asyncio.sleep(0)
            assert state["running"] == 2 and server.active == 2
            gate.set()
            return await asyncio.gather(*clients)
        finally:
            await server.close()

    results = _run(scenario)
    assert len(results) == 5 and all(r.isdigit() for r in results)
    assert state["peak"] == 2


# --- live, programs -----------------------------------------------------------------


@pytest.mark.live
def test_program_runs_with_socket_as_stdio(tmp_path: Path) -> None:
    script = 'read line; echo "got $line from $TCPREMOTEIP proto $PROTO relay=${RELAYCLIENT-unset}"'
    rules = _rules(tmp_path, b'127.:allow,RELAYCLIENT="@x"\n')

    async def scenario() -> bytes:
        server = await serve(LOOPBACK, 0, ["sh", "-c", script], rules, 5, base_env=dict(os.environ))
        try:
            return await _client(server.port, b"ping\n")
        finally:
            await server.close()

    assert _run(scenario) == b"got ping from 127.0.0.1 proto TCP relay=@x\n"


@pytest.mark.live
def test_program_that_cannot_run(tmp_path: Path) -> None:
    log: list[str] = []

    async def scenario() -> bytes:
        argv = [str(tmp_path / "no-such-program")]
        server = await serve(LOOPBACK, 0, argv, None, 5, log=log.append)
        try:
            return await _client(server.port)
        finally:
            await server.close()

    assert _run(scenario) == b""
    assert log == [
        "tcpserver: warning: dropping connection, unable to run "
        f"{tmp_path}/no-such-program: file does not exist"
    ]


def _start(argv: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        proc.wait()
        raise AssertionError(proc.stderr.read() if proc.stderr else b"no port")
    return proc, int(line)


def _fetch(port: int) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=10)
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return code


ENV_SCRIPT = "env | grep -E '^(PROTO|TCP)' | sort"


@pytest.mark.live
def test_python_m_server_tcpserver() -> None:
    proc, port = _start(
        [sys.executable, "-m", "server", "tcpserver", "-1", "-H", "-l", "0", LOOPBACK, "0",
         "sh", "-c", ENV_SCRIPT]
    )  # fmt: skip
    try:
        out = _fetch(port).decode()
    finally:
        assert _stop(proc) == 0
    lines = out.splitlines()
    assert f"TCPLOCALPORT={port}" in lines
    assert "TCPLOCALHOST=0" in lines and "PROTO=TCP" in lines
    assert not any(line.startswith("TCPREMOTEHOST=") for line in lines)


def _masked(text: str) -> list[str]:
    return [
        "TCPREMOTEPORT=*" if line.startswith("TCPREMOTEPORT=") else line
        for line in text.splitlines()
        if not line.startswith("TCPLOCALPORT=")
    ]


@pytest.mark.live
@pytest.mark.external
def test_same_environment_as_debian_tcpserver(tmp_path: Path) -> None:
    if shutil.which("tcpserver") is None:
        pytest.skip("tcpserver (Debian ucspi-tcp) not installed")
    rules = tmp_path / "r.cdb"
    subprocess.run(
        ["tcprules", str(rules), str(tmp_path / "r.tmp")],
        input=b"127.0.0.1:allow,RELAYCLIENT=\"\",X='y'\n",
        check=True,
    )
    outputs = []
    for argv in (
        ["tcpserver"],
        [sys.executable, "-m", "server", "tcpserver"],
    ):
        full = [*argv, "-1", "-H", "-R", "-l", "mx.test", "-x", str(rules), LOOPBACK, "0"]
        proc, port = _start([*full, "sh", "-c", ENV_SCRIPT + "; env | grep -E '^(RELAYCLIENT|X)='"])
        try:
            outputs.append(_masked(_fetch(port).decode()))
        finally:
            _stop(proc)
    assert outputs[0] == outputs[1]
    assert "RELAYCLIENT=" in outputs[0] and "X=y" in outputs[0]


@pytest.mark.live
def test_failing_handler_drops_only_its_client_and_close_cancels_idle_ones() -> None:
    log: list[str] = []
    started = asyncio.Event

    async def scenario() -> tuple[bytes, bool]:
        idle_started = started()
        cancelled: list[bool] = []

        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
        ) -> None:
            first = await reader.readline()
            if first == b"boom\n":
                raise RuntimeError("boom")
            idle_started.set()
            try:
                await reader.read()  # an idle client: waits until cancelled
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        server = await serve(LOOPBACK, 0, handler, None, 5, log=log.append)
        dropped = await _client(server.port, b"boom\n")
        _reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        writer.write(b"hello\n")
        await idle_started.wait()
        await server.close(grace=0)
        writer.close()
        await writer.wait_closed()
        return dropped, bool(cancelled)

    dropped, cancelled = _run(scenario)
    assert dropped == b"" and cancelled
    assert log == ["tcpserver: warning: dropping connection, RuntimeError: boom"]


def test_rules_env_for_the_simulator(tmp_path: Path) -> None:
    from server.tcp.tcpserver import rules_env

    rules = _rules(tmp_path, b'127.:allow,RELAYCLIENT=""\n=bad.example:deny\n')
    env = {"TCPREMOTEIP": "127.0.0.1", "PATH": "/bin"}
    assert rules_env(rules, env) == {**env, "RELAYCLIENT": ""}
    assert rules_env(rules, {"TCPREMOTEIP": "10.0.0.1", "TCPREMOTEHOST": "bad.example"}) is None
    assert rules_env(rules, {"TCPREMOTEIP": "10.0.0.1"}) == {"TCPREMOTEIP": "10.0.0.1"}


def _stop_reading_stderr(proc: subprocess.Popen[bytes]) -> str:
    stderr = proc.stderr
    assert stderr is not None
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    try:
        return stderr.read().decode()
    finally:
        stderr.close()
        if proc.stdout is not None:
            proc.stdout.close()


def _mask_log(text: str) -> list[str]:
    import re

    out = []
    for line in text.splitlines():
        line = re.sub(r"^(tcpserver: (?:pid|ok|deny|end)) \d+", r"\1 PID", line)
        out.append(re.sub(r":\d+(\s|$)", r":PORT\1", line))
    return out


@pytest.mark.live
@pytest.mark.external
def test_same_verbose_log_as_debian_tcpserver() -> None:
    if shutil.which("tcpserver") is None:
        pytest.skip("tcpserver (Debian ucspi-tcp) not installed")
    logs = []
    for argv in (["tcpserver"], [sys.executable, "-m", "server", "tcpserver"]):
        proc, port = _start([*argv, "-v", "-1", "-H", "-R", "-l", "mx", LOOPBACK, "0", "true"])
        try:
            assert _fetch(port) == b""
        finally:
            logs.append(_mask_log(_stop_reading_stderr(proc)))
    # The "end" lines race with SIGTERM in the real tcpserver; compare up to "ok".
    assert logs[0][:4] == logs[1][:4]
    assert logs[0][3] == "tcpserver: ok PID mx:127.0.0.1:PORT :127.0.0.1::PORT"


def test_parse_uid_gid() -> None:
    config, _ = parse_args(["tcpserver", "-u", "7", "-g", "8", "h", "1", "p"])
    assert (config.uid, config.gid) == (7, 8)
    config, _ = parse_args(["tcpserver", "-U", "h", "1", "p"], {"UID": "70", "GID": "80"})
    assert (config.uid, config.gid) == (70, 80)


@pytest.mark.live
@pytest.mark.skipif(os.geteuid() != 0, reason="switching uid needs root")
def test_uid_switch_after_bind() -> None:
    proc, port = _start(
        [sys.executable, "-m", "server", "tcpserver", "-1", "-H", "-R", "-u", "65534",
         "-g", "65534", LOOPBACK, "0", "sh", "-c", "id -u; id -g"]
    )  # fmt: skip
    try:
        out = _fetch(port)
    finally:
        _stop(proc)
    assert out == b"65534\n65534\n"


def test_djbdns_name_format() -> None:
    from server.tcp.tcpserver import djb_todot, ntop_labels

    assert djb_todot(ntop_labels("Mail.Ex_a*mple.ORG")) == "mail.ex_a\\052mple.org"
    assert djb_todot(ntop_labels("a\\.b.c")) == "a\\056b.c"
    assert djb_todot(ntop_labels("x\\032y.z")) == "x\\040y.z"


@pytest.mark.live
def test_command_line_names_come_from_dns(tmp_path: Path) -> None:
    from .ptrdns import ptr_dns_home

    for home in ptr_dns_home(tmp_path):
        proc, port = _start(
            [sys.executable, "-m", "server", "--home", str(home), "tcpserver", "-1", "-R",
             LOOPBACK, "0", "sh", "-c", "env | grep HOST= | sort"]
        )  # fmt: skip
        try:
            out = _fetch(port)
        finally:
            _stop(proc)
        # djbdns (dns_name4) lower-cases, as Debian's tcpserver shows.
        assert out == b"TCPLOCALHOST=mail.example.org\nTCPREMOTEHOST=mail.example.org\n"


@pytest.mark.live
@pytest.mark.parametrize(("addresses", "expected"), [(["127.0.0.1"], "a.example"), ([], None)])
def test_paranoid_keeps_only_verified_names(addresses: list[str], expected: str | None) -> None:
    seen: list[dict[str, str]] = []

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        seen.append(env)

    async def resolver(ip: str) -> str | None:
        return "a.example"

    async def forward(name: str) -> list[str]:
        assert name == "a.example"
        return addresses

    async def scenario() -> None:
        server = await serve(
            LOOPBACK, 0, handler, None, 5, resolver=resolver, forward=forward, paranoid=True
        )
        try:
            await _client(server.port)
        finally:
            await server.close()

    _run(scenario)
    assert seen[0].get("TCPREMOTEHOST") == expected
    assert seen[0]["TCPLOCALHOST"] == "a.example"


def test_parse_paranoid() -> None:
    assert parse_args(["tcpserver", "-p", "h", "1", "p"])[0].paranoid
    assert not parse_args(["tcpserver", "-p", "-P", "h", "1", "p"])[0].paranoid
