"""qmail-send on the simulator: log lines, queue files, bounces, signals."""

from __future__ import annotations

import os

from server.qdir import qfn
from server.spawn import DeliveryJob

from .simkit import Sim

QP = "qp 1000 uid 1000"


def queue_dir_empty(sim: Sim) -> bool:
    return not any(sim.files(sub) for sub in ("mess", "info", "local", "remote", "todo", "intd"))


def test_one_local_success_log_is_qmails(sim: Sim) -> None:
    send = sim.start()
    msgid = sim.queue("alice@example.com", ["bob@mx.example.org"])
    send.run_due()
    assert sim.lines == [
        "status: local 0/10 remote 0/20",
        f"new msg {msgid}",
        f"info msg {msgid}: bytes 90 from <alice@example.com> {QP}",
        f"starting delivery 1: msg {msgid} to local bob@mx.example.org",
        "status: local 1/10 remote 0/20",
        "delivery 1: success: delivered/",
        "status: local 0/10 remote 0/20",
        f"end msg {msgid}",
    ]
    job = sim.local.seen[0]
    assert job == DeliveryJob(
        msgid=msgid,
        message=qfn(sim.home / "queue", "mess", msgid),
        sender="alice@example.com",
        recipient="bob@mx.example.org",
    )
    assert queue_dir_empty(sim)
    assert send.next_wakeup() is None


def test_queue_files_and_done_marks(sim: Sim) -> None:
    sim.local.script = lambda job: b"Kok\n" if job.recipient.startswith("a") else b"Zbusy\n"
    send = sim.start()
    msgid = sim.queue("s@x.example", ["a@mx.example.org", "b@mx.example.org", "c@far.example"])
    sim.remote.script = lambda job: b"Zlater\n"
    send.run_due()
    q = sim.home / "queue"
    assert qfn(q, "info", msgid).read_bytes() == b"Fs@x.example\0"
    # a's record was marked done in place; b's is still to do
    assert qfn(q, "local", msgid).read_bytes() == b"Da@mx.example.org\0Tb@mx.example.org\0"
    assert qfn(q, "remote", msgid).read_bytes() == b"Tc@far.example\0"
    birth = int(sim.clock.t)
    assert int(os.stat(qfn(q, "info", msgid)).st_mtime) == birth
    assert not qfn(q, "todo", msgid).exists()
    assert not qfn(q, "intd", msgid).exists()
    # the local file is due again at birth + 100, plus qmail's one second of fuzz
    assert send.next_wakeup() == birth + 101
    status = send.status()
    assert (status.messages, status.unprocessed) == (1, 0)


def test_failure_bounces_to_sender(sim: Sim) -> None:
    sim.local.script = lambda job: b"DSorry, no mailbox here by that name. (#5.1.1)\n"
    send = sim.start()
    msgid = sim.queue("alice@example.com", ["nobody@mx.example.org"])
    send.run_due()
    assert "delivery 1: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/" in sim.lines
    bounce_line = next(line for line in sim.lines if line.startswith("bounce msg"))
    assert bounce_line == f"bounce msg {msgid} qp 1001"
    assert sim.lines.index(bounce_line) + 1 == sim.lines.index(f"end msg {msgid}")
    # the bounce is picked up at once (qmail-queue pulled the trigger) and goes remote
    bounce_job = sim.remote.seen[0]
    assert (bounce_job.sender, bounce_job.recipient) == ("", "alice@example.com")
    text = sim.remote.texts[0]
    assert text.startswith(b"Received: (qmail 1001 invoked for bounce); 14 Nov 2023 22:13:20")
    assert b"\nFrom: MAILER-DAEMON@mx.example.org\nTo: alice@example.com\n" in text
    assert (
        b"<nobody@mx.example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        b"--- Below this line is a copy of the message.\n\n"
        b"Return-Path: <alice@example.com>\n"
    ) in text
    assert not (sim.home / "queue" / "bounce" / str(msgid)).exists()


def test_double_and_triple_bounce(sim: Sim) -> None:
    sim.local.script = lambda job: b"Dno such user\n"
    send = sim.start()
    sim.queue("", ["nobody@mx.example.org"])
    send.run_due()
    # the double bounce goes to doublebounceto@doublebouncehost (me): postmaster,
    # which also fails -> triple bounce, discarded
    dbl = [j for j in sim.local.seen if j.recipient == "postmaster@mx.example.org"]
    assert len(dbl) == 1 and dbl[0].sender == "#@[]"
    triple = [line for line in sim.lines if line.startswith("triple bounce")]
    assert len(triple) == 1 and triple[0].startswith("triple bounce: discarding bounce/")
    assert queue_dir_empty(sim)
    assert not sim.files("bounce")


def test_double_bounce_text(sim: Sim) -> None:
    seen: list[bytes] = []

    def script(job: DeliveryJob) -> bytes:
        if job.recipient == "postmaster@mx.example.org":
            seen.append(job.message.read_bytes())
            return b"Kok\n"
        return b"Dno such user\n"

    sim.local.script = script
    send = sim.start()
    sim.queue("", ["nobody@mx.example.org"])
    send.run_due()
    body = seen[0].split(b"\n", 1)[1]  # after qmail-queue's Received line
    assert body.startswith(
        b"Date: 14 Nov 2023 22:13:20 -0000\n"
        b"From: MAILER-DAEMON@mx.example.org\n"
        b"To: postmaster@mx.example.org\n"
        b"Subject: failure notice\n\n"
        b"Hi. This is the qmail-send program at mx.example.org.\n"
        b"I tried to deliver a bounce message to this address, but the bounce bounced!\n\n"
        b"<nobody@mx.example.org>:\nno such user\n\n"
        b"--- Below this line is the original bounce.\n\n"
        b"Return-Path: <>\n"
    )


def test_bounce_controls_and_virtualdomain_recipient(sim: Sim) -> None:
    sim.control("bouncefrom", "bounces\n")
    sim.control("bouncehost", "b.example\n")
    sim.control("virtualdomains", "virt.example:joe\n")
    sim.local.script = lambda job: b"Dgone\n" if job.recipient.startswith("joe-") else b"Kok\n"
    send = sim.start()
    sim.queue("alice@mx.example.org", ["x@virt.example"])
    send.run_due()
    assert sim.local.seen[0].recipient == "joe-x@virt.example"
    text = sim.local.texts[1]
    assert b"\nFrom: bounces@b.example\n" in text
    assert b"Hi. This is the qmail-send program at b.example.\n" in text
    assert b"<x@virt.example>:\ngone\n\n" in text


def test_channel_raising_is_a_deferral(sim: Sim) -> None:
    calls = []

    def boom(job: DeliveryJob) -> bytes:
        calls.append(job)
        if len(calls) == 1:
            raise RuntimeError("channel fell over")
        return b"Kok\n"

    sim.local.script = boom
    send = sim.start()
    msgid = sim.queue("a@x.example", ["b@mx.example.org"])
    send.run_due()
    assert any(line.startswith("delivery 1: deferral: qmail-sim:") for line in sim.lines)
    assert (sim.home / "queue" / "local" / str(msgid % 23) / str(msgid)).exists()
    sim.advance(200)
    assert "delivery 2: success: ok/" in sim.lines
    assert queue_dir_empty(sim)


def test_mangled_report(sim: Sim) -> None:
    sim.local.script = lambda job: b"Xwhat"
    send = sim.start()
    sim.queue("a@x.example", ["b@mx.example.org"])
    send.run_due()
    assert "delivery 1: report mangled, will defer" in sim.lines


def test_corrupt_info_file(sim: Sim) -> None:
    sim.local.script = lambda job: b"Zlater\n"
    send = sim.start()
    msgid = sim.queue("a@x.example", ["b@mx.example.org"])
    birth = int(sim.clock.t)
    send.run_due()
    info = qfn(sim.home / "queue", "info", msgid)
    info.write_bytes(b"garbage without a NUL")
    sim.advance(200)
    warning = f"warning: trouble opening info/{msgid % 23}/{msgid}; will try again later"
    assert warning in sim.lines
    # nothing is lost: the message stays queued and is retried every 123 seconds
    assert qfn(sim.home / "queue", "mess", msgid).exists()
    # (tried at birth + 101, then SLEEP_SYSFAIL = 123 later, plus the fuzz second)
    assert send.next_wakeup() == birth + 101 + 123 + 1


def test_alarm_retries_now(sim: Sim) -> None:
    results = iter([b"Zlater\n", b"Kok\n"])
    sim.remote.script = lambda job: next(results)
    send = sim.start()
    sim.queue("a@mx.example.org", ["b@far.example"])
    send.run_due()
    sim.clock.advance(5)
    send.run_due()
    assert len(sim.remote.seen) == 1
    send.alarm()
    send.run_due()
    assert len(sim.remote.seen) == 2
    assert send.next_wakeup() is None


def test_hangup_rereads_locals(sim: Sim) -> None:
    send = sim.start()
    sim.control("locals", "mx.example.org\nnew.example\n")
    sim.queue("a@mx.example.org", ["b@new.example"])
    send.run_due()
    assert sim.remote.seen and not sim.local.seen
    send.hangup()
    sim.queue("a@mx.example.org", ["c@new.example"])
    send.run_due()
    assert [j.recipient for j in sim.local.seen] == ["c@new.example"]


def test_terminate_stamps_retry_times_and_restart_keeps_them(sim: Sim) -> None:
    sim.remote.script = lambda job: b"Zlater\n"
    send = sim.start()
    msgid = sim.queue("a@mx.example.org", ["b@far.example"])
    birth = int(sim.clock.t)
    send.run_due()
    send.terminate()
    assert sim.lines[-1] == "status: exiting"
    remote = qfn(sim.home / "queue", "remote", msgid)
    assert int(os.stat(remote).st_mtime) == birth + 400
    assert send.next_wakeup() is None
    again = sim.start()
    assert again.next_wakeup() == birth + 401
    sim.advance(401)
    assert len(sim.remote.seen) == 2


def test_queuelifetime_control(sim: Sim) -> None:
    sim.control("queuelifetime", "1000\n")
    sim.remote.script = lambda job: b"Zlater\n"
    sim.local.script = lambda job: b"Kok\n"
    send = sim.start()
    sim.queue("a@mx.example.org", ["b@far.example"])
    send.run_due()
    sim.advance(2000)
    fails = [line for line in sim.lines if ": failure: " in line]
    assert fails == [
        "delivery 3: failure: later/I'm_not_going_to_try_again;"
        "_this_message_has_been_in_the_queue_too_long./"
    ]


def test_concurrency_zero_holds_deliveries(sim: Sim) -> None:
    sim.control("concurrencyremote", "0\n")
    send = sim.start()
    sim.queue("a@mx.example.org", ["b@far.example", "c@mx.example.org"])
    send.run_due()
    assert not sim.remote.seen
    assert len(sim.local.seen) == 1
    assert "status: local 0/10 remote 0/0" in sim.lines
