"""qmail-send and its helpers: the delivery scheduler, bounces, queue reports.

The pieces, from the inside out:

* :mod:`.schedule` — the retry schedule and qmail-send's timing constants.
* :mod:`.log` — qmail-send's log line texts and ``logsafe``.
* :mod:`.config` — the control files qmail-send reads, as one frozen object.
* :mod:`.todo` — ``rewrite()``: locals, virtualdomains, percenthack, envnoathost.
* :mod:`.bounce` — the bounce/ file entries and the bounce message text.
* :mod:`.store` — every file step qmail-send takes in ``queue/``.
* :mod:`.prioq`, :mod:`.jobs` — priority queues and the job/delivery tables.
* :mod:`.core` — the scheduler itself (sans-I/O for deliveries) and
  :class:`~server.send.core.QmailSend`, the simulator's driver.
* :mod:`.daemon` — the same core on a real clock, channels in worker threads
  (:mod:`.workers`).
* :mod:`.program`, :mod:`.start`, :mod:`.clean`, :mod:`.qstat`, :mod:`.qread` —
  ``bin/qmail-send``, ``qmail-start``, ``qmail-clean``, ``qmail-qstat``,
  ``qmail-qread``.
"""
