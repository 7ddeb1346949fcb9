"""The notification watcher never stalls on a large task document: it reads only the fields it
needs from the change stream, so a later task's e-mail still arrives (real mongod, real SMTP)."""
from __future__ import annotations

from aiosmtpd.controller import Controller

from fsm.store.embedded import free_port
from scheduler import notify
from scheduler.notify_channels import SmtpSettings
from tests.procs import wait_for
from tests.test_notify import ADMIN, Mailbox, fast, notifiers, publish, run, start_notifier  # noqa: F401


def test_a_task_with_a_large_result_does_not_stall_later_mail(store, notifiers):  # noqa: F811
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        notify.subscribe(store, {"event": "task.succeeded", "channel": {"type": "email", "to": "ops@example.org"}},
                         ADMIN)
        notifiers.append(start_notifier(store, fast(smtp=SmtpSettings(host="127.0.0.1", port=smtp.port))))
        # Given a task whose last update carries ~7 MB twice (task result and attempt result):
        # as a full-document change event it would pass MongoDB's 16 MB limit.
        big = publish(store, "echo", args=[1])
        run(store, big, result={"blob": "x" * (7 << 20)})
        # When a normal task succeeds after it
        small = publish(store, "echo", args=[2])
        run(store, small, result=2)
        # Then both e-mails arrive, the normal one included
        wait_for(lambda: len(mailbox.messages) >= 2, 30, what="two e-mails")
        texts = "\n".join(text for _, text in mailbox.messages)
        assert big in texts and small in texts
        assert all(len(text) < 20_000 for _, text in mailbox.messages)
    finally:
        smtp.stop()
