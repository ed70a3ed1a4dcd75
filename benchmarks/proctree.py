"""CPU time of a server and every process under it, from /proc (Linux).

A benchmark samples :func:`tree_cpu` of a server's first process before and
after a run: the difference is the CPU (user and system, kernel work for the
server's files included) that the server spent on the run, whether it forks
a process per connection (tcpserver: the children's time is added to its
own when it reaps them) or keeps long-running children (serve: their time is
read while they run). Divided by the messages, it is a cost per message that
moves less with the machine's load than a rate does.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from the state on (field 3)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return out


def tree_cpu(pid: int) -> float:
    """Seconds of CPU used so far by ``pid``, its reaped children and its live descendants."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # utime, stime, cutime, cstime are fields 14-17 of /proc/PID/stat
    own = sum(int(f) for f in fields[11:15]) / _TICK
    return own + sum(tree_cpu(child) for child in _children(pid))
