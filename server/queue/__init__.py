"""qmail-queue and the queue on disk.

- :mod:`server.queue.client` -- :func:`queue_message`, what every program
  that queues mail calls (qmail.c's qmail_open ... qmail_close);
- :mod:`server.queue.program` -- ``qmail-queue`` itself (fd 0 message, fd 1
  envelope, exit codes of qmail-queue(8));
- :mod:`server.queue.core` -- the ordered durable steps and readers of the
  files they leave (``read_todo``, ``read_envelope``, ``message_ids``);
- :mod:`server.queue.states` -- the table of queue states (INTERNALS) and
  qmail-send/qmail-clean's cleanup of stale files;
- :mod:`server.queue.envelope` -- the envelope stream and file formats;
- :mod:`server.queue.codes` -- exit codes and qmail_close()'s texts.
"""
