"""qmail-sim's server: a Python reimplementation of netqmail-1.06.

Each qmail program lives in its own module with a ``main(argv, env, stdin,
stdout, ctx) -> int`` entry point (see :mod:`server.programs`), callable
in-process by the harness and as a process from a qmail home's ``bin/``.
Protocol and policy cores import no sockets, clocks or processes; everything
nondeterministic arrives through :class:`server.runtime.Runtime`.
"""
