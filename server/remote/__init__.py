"""Remote delivery: qmail-rspawn, qmail-remote, lock/tcpto, smtproutes.

* :mod:`server.remote.smtpclient` — the SMTP dialogue without I/O.
* :mod:`server.remote.program` — qmail-remote (``deliver`` in-process, ``main``).
* :mod:`server.remote.rspawn` — ``RemoteChannel`` and bin/qmail-rspawn.
* :mod:`server.remote.tcpto`, :mod:`server.remote.tcpok` — lock/tcpto and its tools.
* :mod:`server.remote.routes` — control/smtproutes.
* :mod:`server.remote.connect` — the real socket connector.
* :mod:`server.remote.replies` — every text the programs print.
"""
