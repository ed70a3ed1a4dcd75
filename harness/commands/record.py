"""``qmail-sim record``: an SMTP or POP3 session against a target, written as a scenario.

The target is a server on a loopback port (``--smtp``/``--pop3 HOST:PORT``)
or a program of a qmail home run over stdin/stdout (``--home DIR``, as
tcpserver would run it, with tcp-environ(5) variables). Either way it is a
:class:`Channel`: bytes in, bytes out, a file descriptor to wait on.

Two ways to drive it:

- driver (default): client lines come from stdin, one at a time; after each,
  the recorder's :class:`harness.recorder.Replies` says whether a reply is
  still owed, and we read until it has come (or ``--timeout`` passes);
- proxy (``--listen 127.0.0.1:PORT``): one client connection is accepted and
  forwarded to the target byte for byte, both directions recorded.

The session's bytes go through :class:`harness.recorder.Recorder`; with
``--home`` the home's control files, POP3 users and patches go into the
scenario too, so that it replays on the simulator (``--run`` checks that).
Loopback only: every address is checked before it is used.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Protocol

from harness.commands.serve_args import loopback_address
from harness.recorder import Protocol as Proto
from harness.recorder import Recorder, World, scenario_text

HELP = "record an SMTP or POP3 session as a scenario file"
DESCRIPTION = """\
Record an SMTP or POP3 session and write it as a scenario file (one smtp/pop3
step whose transcript holds the exact C:/S: lines; times, qp numbers, pids and
message sizes become 'S: ~ regex' lines).

The target: --smtp HOST:PORT or --pop3 HOST:PORT (a server on loopback), or
--home DIR with --program qmail-smtpd|qmail-popup (DIR/bin/PROGRAM run over
stdin/stdout with tcpserver's variables and --env K=V). With --home, the
home's control files, POP3 users and patches go into the scenario as well
(give --home with --smtp/--pop3 to take them from the served home).

The client: lines read from stdin (each sent with CRLF once the reply to the
previous one has come), or with --listen 127.0.0.1:PORT one real client (swaks,
telnet, a mail client) whose connection is forwarded to the target.

  qmail-sim serve HOME --smtp 127.0.0.1:2525 &
  printf 'HELO me\\nQUIT\\n' | qmail-sim record --smtp 127.0.0.1:2525 --home HOME -o s.yaml
"""

#: seconds to wait for a reply that is owed before giving up on it
DEFAULT_TIMEOUT = 10.0
#: after the client is done: how long to wait for the server's last words
LINGER = 2.0
CHUNK = 65536


class Channel(Protocol):
    def fileno(self) -> int: ...
    def send(self, data: bytes) -> None: ...
    def read(self) -> bytes: ...  # b"" at end of file
    def shut_write(self) -> None: ...
    def close(self) -> int | None: ...  # the program's exit code, if there is one


class SocketChannel:
    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> bytes:
        return self.sock.recv(CHUNK)

    def shut_write(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> int | None:
        self.sock.close()
        return None


class ProcessChannel:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=cwd
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout

    def fileno(self) -> int:
        return self.stdout.fileno()

    def send(self, data: bytes) -> None:
        try:
            self.stdin.write(data)
            self.stdin.flush()
        except BrokenPipeError:
            pass

    def read(self) -> bytes:
        return os.read(self.fileno(), CHUNK)

    def shut_write(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.stdin.close()

    def close(self) -> int | None:
        self.shut_write()
        self.stdout.close()
        try:
            return self.proc.wait(timeout=LINGER)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not K=V")
    return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--smtp", type=loopback_address, metavar="HOST:PORT")
    target.add_argument("--pop3", type=loopback_address, metavar="HOST:PORT")
    parser.add_argument("--home", type=Path, metavar="DIR", help="the target's qmail home")
    parser.add_argument("--program", choices=("qmail-smtpd", "qmail-popup"), default="qmail-smtpd")
    parser.add_argument(
        "--args", nargs=argparse.REMAINDER, default=None, metavar="ARG",
        help="the program's arguments (qmail-popup default: ME checkpassword qmail-pop3d Maildir)",
    )  # fmt: skip
    parser.add_argument("--env", action="append", type=env_pair, default=[], metavar="K=V")
    parser.add_argument("--listen", type=loopback_address, metavar="HOST:PORT")
    parser.add_argument("--name", help="the scenario's name")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", required=True)
    parser.add_argument("--run", action="store_true", help="replay it on the simulator")


# -- driving ---------------------------------------------------------------------------


def _wait(channel: Channel, timeout: float) -> bytes | None:
    """The next bytes from the target, b"" at its end, None when ``timeout`` passed."""
    ready, _, _ = select.select([channel], [], [], timeout)
    if not ready:
        return None
    try:
        return channel.read()
    except ConnectionResetError:
        return b""


def _drain(channel: Channel, rec: Recorder, timeout: float) -> bool:
    """Read while a reply is owed; False when the target hung up."""
    while rec.replies.waiting:
        data = _wait(channel, timeout)
        if data is None:
            return True
        if not data:
            return False
        rec.server(data)
    return True


def drive(channel: Channel, rec: Recorder, lines: Iterable[bytes], timeout: float) -> None:
    open_ = _drain(channel, rec, timeout)
    for line in lines:
        if not open_:
            break
        data = line.rstrip(b"\r\n") + b"\r\n"
        channel.send(data)
        rec.client(data)
        open_ = _drain(channel, rec, timeout)
    channel.shut_write()
    while open_ and (rest := _wait(channel, LINGER)):
        rec.server(rest)


def _say_listening(host: str, port: int) -> None:
    print(f"listening {host}:{port}", flush=True)


def proxy(
    channel: Channel,
    rec: Recorder,
    listen: tuple[str, int],
    on_ready: Callable[[str, int], None] = _say_listening,
) -> None:
    """Accept one client on ``listen`` and forward it to ``channel``, recording both ways."""
    with socket.create_server(listen) as server:
        on_ready(listen[0], server.getsockname()[1])
        client, _ = server.accept()
    with client:
        _forward(client, channel, rec)


def _forward(client: socket.socket, channel: Channel, rec: Recorder) -> None:
    watching: list[socket.socket | Channel] = [client, channel]
    while channel in watching:
        ready, _, _ = select.select(watching, [], [])
        if client in ready:
            data = client.recv(CHUNK)
            if data:
                rec.client(data)
                channel.send(data)
            else:
                watching.remove(client)
                channel.shut_write()
        if channel in ready:
            data = channel.read()
            if not data:
                break
            rec.server(data)
            with contextlib.suppress(OSError):
                client.sendall(data)


# -- the target and its world ------------------------------------------------------------------


def _stdin_lines() -> Iterator[bytes]:
    yield from sys.stdin.buffer


def open_target(args: argparse.Namespace) -> tuple[Channel, Proto]:
    if args.smtp or args.pop3:
        return SocketChannel(args.smtp or args.pop3, args.timeout), "smtp" if args.smtp else "pop3"
    if args.home is None:
        raise ValueError("give --smtp HOST:PORT, --pop3 HOST:PORT or --home DIR")
    home: Path = args.home.resolve()
    env = tcp_env(home, args.program, dict(args.env))
    argv = [str(home / "bin" / args.program)]
    if args.program == "qmail-popup":
        me = _read_lines(home / "control" / "me")
        # a home's bin/ has no checkpassword (it is not a qmail program): ours, by module
        checkpassword = [sys.executable, "-m", "server", "--home", str(home), "checkpassword"]
        default = [me[0] if me else "localhost", *checkpassword, "qmail-pop3d", "Maildir"]
        argv += args.args if args.args is not None else default
    elif args.args:
        argv += args.args
    proto: Proto = "smtp" if args.program == "qmail-smtpd" else "pop3"
    return ProcessChannel(argv, env, home), proto


def tcp_env(home: Path, program: str, extra: dict[str, str]) -> dict[str, str]:
    """What tcpserver gives a connection from 127.0.0.1 (tcp-environ(5)), plus ``extra``."""
    env = {
        "PATH": f"{home / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PROTO": "TCP",
        "TCPLOCALIP": "127.0.0.1",
        "TCPLOCALPORT": "25" if program == "qmail-smtpd" else "110",
        "TCPREMOTEIP": "127.0.0.1",
        "TCPREMOTEPORT": "40000",
    }
    return {**env, **extra}


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeError):
        return []


def world_of(home: Path | None) -> World:
    """The home's control files (text ones), POP3 users and patches."""
    world = World()
    if home is None:
        world.notes.append("recorded without --home: add the target's control files by hand")
        return world
    for path in sorted((home / "control").glob("*")):
        if path.is_file() and not path.name.endswith(".cdb"):
            lines = _read_lines(path)
            if lines or path.stat().st_size == 0:
                world.control[path.name] = lines[0] if len(lines) == 1 else lines
    for row in _read_lines(home / ".qmail-sim" / "passwords"):
        user, _, rest = row.partition(":")
        password = rest.partition(":")[0]
        if user:
            world.users[user] = {"password": password}
    world.patches = [p for p in _read_lines(home / ".qmail-sim" / "patches") if p.strip()]
    return world


def run(args: argparse.Namespace) -> int:
    try:
        channel, proto = open_target(args)
    except (ValueError, OSError) as exc:
        print(f"qmail-sim record: {exc}", file=sys.stderr)
        return 2
    rec = Recorder(proto)
    try:
        if args.listen:
            proxy(channel, rec, args.listen)
        else:
            drive(channel, rec, _stdin_lines(), args.timeout)
    finally:
        code = channel.close()
        rec.close()
    home = args.home.resolve() if args.home else None
    world = world_of(home)
    if proto == "pop3":
        world.notes.append("mailbox contents are not recorded: deliver the same messages first")
    text = scenario_text(
        name=args.name or f"recorded {proto} session",
        protocol=proto,
        transcript=rec.transcript(),
        env=dict(args.env),
        world=world,
        exit_code=code,
    )
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(rec.entries)} transcript lines)", file=sys.stderr)
    return replay(args.output) if args.run else 0


def replay(path: Path) -> int:
    """Play the written scenario on the simulator; 0 when it passes."""
    from harness.report import details, result_line
    from harness.runner import run_scenario
    from harness.scenario import ScenarioError, load_file

    try:
        scenarios = load_file(path)
    except ScenarioError as exc:
        print(f"qmail-sim record: the written file does not load: {exc}", file=sys.stderr)
        return 1
    results = [run_scenario(s, target="sim") for s in scenarios]
    for r in results:
        print(result_line(r))
        for line in details(r):
            print(line)
    return 0 if all(r.ok for r in results) else 1
