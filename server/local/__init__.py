"""Local delivery: qmail-lspawn, qmail-getpw, qmail-local and qmail-newu.

How a local recipient becomes a delivery (qmail-lspawn.c, qmail-local.c):

* :mod:`server.local.getpw` finds the user in charge of the local part —
  ``users/cdb`` (built by :mod:`server.local.newu` from ``users/assign``), then
  the passwd database with ``-`` extensions, then the ``alias`` user;
* :mod:`server.local.program` is qmail-local: it searches the user's
  ``.qmail`` files (:mod:`server.local.dotqmail`) and carries out each line
  (:mod:`server.local.maildir`, :mod:`server.local.mbox`,
  :mod:`server.local.command`, :mod:`server.local.forwarding`);
* :mod:`server.local.lspawn` turns qmail-local's exit code and output into the
  ``K``/``Z``/``D`` report qmail-send reads (:class:`LocalChannel`).

Every text a user can see lives in :mod:`server.local.replies`.
"""
