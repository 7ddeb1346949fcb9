"""Notifications: real SMTP and HTTP receivers, a real change stream, retries with backoff,
and a queue that keeps running while a channel fails."""
from __future__ import annotations

import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from fsm.store import Claimant, Store, database, server_now
from fsm.store.embedded import free_port
from fsm.store.spec import validate
from scheduler import notify
from scheduler.notify import Notifier, NotifyConfig
from scheduler.notify_channels import SIGNATURE_HEADER, SmtpSettings, sign
from tests.procs import wait_for

ADMIN = {"_id": "admin", "role": "admin"}
SECRET = "s3cret-for-the-webhook-tests"


def publish(store, function="echo", owner="admin", **body):
    spec = validate({"function": function, "version": "builtin", "max_retries": 0, **body})
    doc = store.tasks.document(spec, owner)
    store.tasks.insert([doc])
    return doc["_id"]


def run(store, task_id, state="succeeded", worker="w", **fields):
    """Claim the task as ``worker`` and end the attempt (what a worker daemon does)."""
    claim = store.tasks.claim_next(Claimant(worker))
    assert claim is not None and claim.task_id == task_id
    store.tasks.finish_attempt(task_id, claim.attempt_id, state, worker=worker, **fields)


def fast(**overrides) -> NotifyConfig:
    return NotifyConfig(**{"check_s": 3600, "poll_s": 0.05, "backoff_s": 0.2, "max_attempts": 3,
                           "webhook_timeout_s": 2, **overrides})


def start_notifier(store, config) -> Notifier:
    notifier = Notifier(store, config).start()
    # the change stream is open once it has saved its first position
    wait_for(lambda: store.db.notify_state.find_one({"_id": notify.STREAM_STATE}), 20, what="the change stream")
    return notifier


class Receiver:
    """A real HTTP server in a thread that records each POST and answers ``statuses`` in turn."""

    def __init__(self, statuses=(200,)):
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses = list(statuses)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                status = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


class Mailbox:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((envelope.rcpt_tos, envelope.content.decode(errors="replace")))
        return "250 OK"

    def __init__(self):
        self.messages: list = []


@pytest.fixture
def receiver():
    made = []

    def make(statuses=(200,)):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def notifiers():
    running: list[Notifier] = []
    yield running
    for n in running:
        n.stop()


def test_a_failed_task_is_mailed_with_its_id_and_error(store, notifiers):
    # Given a real SMTP server and a subscription to failures of the function "fail"
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        notify.subscribe(store, {"event": "task.failed", "function": "fail",
                                 "channel": {"type": "email", "to": "ops@example.org"}}, ADMIN)
        notifiers.append(start_notifier(store, fast(smtp=SmtpSettings(host="127.0.0.1", port=smtp.port,
                                                                      mail_from="suanwang@example.org"))))
        # When a task fails (and another, of another function, succeeds)
        ok = publish(store, "echo", args=[1])
        run(store, ok)
        task_id = publish(store, "fail")
        run(store, task_id, "failed", error="ValueError: the disk is on fire")
        # Then exactly one e-mail arrives, naming the task and its error
        wait_for(lambda: mailbox.messages, 20, what="an e-mail")
        rcpt, text = mailbox.messages[0]
        assert rcpt == ["ops@example.org"]
        assert task_id in text and "ValueError: the disk is on fire" in text and "Subject: [suanwang] task" in text
        delivery = wait_for(lambda: store.db.deliveries.find_one({"status": "sent"}), 10, what="a sent delivery")
        assert delivery["attempts"] == 1 and delivery["payload"]["task"]["id"] == task_id
        assert len(mailbox.messages) == 1 and store.db.deliveries.count_documents({}) == 1
    finally:
        smtp.stop()


def test_webhooks_are_signed_and_no_event_is_lost_across_a_restart(store, receiver, notifiers):
    hook = receiver()
    notify.subscribe(store, {"event": "task.succeeded", "function": "echo",
                             "channel": {"type": "webhook", "url": hook.url, "secret": SECRET}}, ADMIN)
    notify.subscribe(store, {"event": "task.disputed",
                             "channel": {"type": "webhook", "url": hook.url, "secret": SECRET}}, ADMIN)
    notify.subscribe(store, {"event": "task.succeeded", "function": "noop",
                             "channel": {"type": "webhook", "url": hook.url, "secret": SECRET}}, ADMIN)
    # (a business user's global subscription hears only of that user's own tasks)
    notify.subscribe(store, {"event": "task.succeeded", "channel": {"type": "webhook", "url": hook.url,
                                                                    "secret": SECRET}},
                     {"_id": "bob", "role": "business"})
    notifier = start_notifier(store, fast())
    first = publish(store, "echo", args=["hello"])
    run(store, first, result="hello")
    wait_for(lambda: len(hook.requests) == 1, 20, what="the first webhook")
    # When the notifier stops, a task finishes meanwhile, and a new notifier starts
    notifier.stop()
    second = publish(store, "echo", args=["again"])
    run(store, second, result="again")
    disputed = publish(store, "echo", redundancy=2, quorum=2)
    run(store, disputed, worker="w1", result=1)
    run(store, disputed, worker="w2", result=2)
    assert store.tasks.get(disputed)["reason"] == "disputed"
    notifiers.append(start_notifier(store, fast()))
    # Then every event arrives once, each body signed with HMAC-SHA256 under the secret
    wait_for(lambda: len(hook.requests) >= 3, 20, what="three webhooks")
    bodies = []
    for headers, raw in hook.requests:
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], sign(SECRET, raw))
        bodies.append(json.loads(raw))
    got = sorted((b["event"], b["task"]["id"]) for b in bodies)
    assert got == sorted([("task.succeeded", first), ("task.succeeded", second), ("task.disputed", disputed)])
    assert all(b["task"]["function"] == "echo" for b in bodies)
    assert next(b for b in bodies if b["event"] == "task.disputed")["task"]["reason"] == "disputed"
    assert store.db.deliveries.count_documents({"status": "sent"}) == len(hook.requests) == len(bodies)


def change_streams(store) -> list:
    return list(store.db.client.admin.aggregate([
        {"$currentOp": {"idleCursors": True}},
        {"$match": {"ns": f"{store.db.name}.tasks", "cursor.originatingCommand.pipeline.0.$changeStream": {
            "$exists": True}}}]))


def test_without_task_subscriptions_no_stream_runs_and_a_new_one_misses_nothing(store, mongo, db_name, receiver,
                                                                                notifiers):
    # Given a notifier while nobody subscribes to task events: no change stream reads the tasks
    notifiers.append(start_notifier(store, fast()))
    assert "quiet_since" in store.notify.stream_position()
    run(store, publish(store, "echo", args=["before"]))
    assert change_streams(store) == []

    # When a subscription is made through another server and a task ends before the notifier looks
    hook = receiver()
    other = Store(database(mongo.uri, db_name))
    notify.subscribe(other, {"event": "task.succeeded", "channel": {"type": "webhook", "url": hook.url,
                                                                     "secret": SECRET}}, ADMIN)
    after = publish(store, "echo", args=["after"])
    run(store, after)

    # Then its event is delivered (the stream starts where the notifier last saw nobody listening)
    wait_for(lambda: hook.requests, 20, what="the webhook")
    assert [json.loads(body)["task"]["id"] for _, body in hook.requests] == [after]
    assert change_streams(store)
    # and once the last subscription is gone, the stream closes again
    store.db.subscriptions.delete_many({})
    wait_for(lambda: not change_streams(store), 20, what="the stream to close")
    other.db.client.close()


def test_a_failing_channel_is_retried_then_recorded_while_tasks_keep_running(store, receiver, notifiers):
    # Given one receiver that is down and one that answers 500 twice, then 200
    down = f"http://127.0.0.1:{free_port()}/hook"
    flaky = receiver(statuses=(500, 500, 200))
    for url in (down, flaky.url):
        notify.subscribe(store, {"event": "task.succeeded", "channel": {"type": "webhook", "url": url,
                                                                        "secret": SECRET}}, ADMIN)
    notifiers.append(start_notifier(store, fast()))
    # When tasks are published, claimed and finished while the deliveries fail
    ids = []
    for i in range(5):
        ids.append(publish(store, "echo", args=[i]))
        run(store, ids[-1], result=i)
    # Then the queue never waited: every task succeeded
    assert all(store.tasks.get(t)["status"] == "succeeded" for t in ids)
    # ... the down receiver's deliveries end failed after 3 tries, with the error recorded
    done = lambda status, url: store.db.deliveries.count_documents({"status": status, "target": url})  # noqa: E731
    wait_for(lambda: done("failed", down) == 5 and done("sent", flaky.url) == 5, 30, what="all deliveries decided")
    for d in store.db.deliveries.find({"target": down}):
        assert d["attempts"] == 3 and "unreachable" in d["last_error"] and len(d["errors"]) == 3
    # ... and the flaky receiver's two 500 answers were retried until each delivery got through
    attempts = [d["attempts"] for d in store.db.deliveries.find({"target": flaky.url})]
    assert sum(attempts) == 5 + 2 and max(attempts) >= 2 and len(flaky.requests) == 7
    assert store.db.deliveries.count_documents({"status": {"$nin": ["sent", "failed"]}}) == 0


def test_worker_disk_temperature_and_queue_checks_fire_once_per_episode(store):
    now = server_now(store.db)
    store.db.workers.insert_many([
        {"_id": "m1", "state": "online", "temps": {"cpu_0": 55.0}, "gpus": [{"index": 0, "temp": 91}],
         "disk": {"percent": 97.5}},
        {"_id": "m2", "state": "offline", "last_seen": now - timedelta(minutes=5)},
        {"_id": "m3", "state": "online", "temps": {"cpu_0": 50.0}, "gpus": [], "disk": {"percent": 10}},
    ])
    old = publish(store, "echo")
    store.db.tasks.update_one({"_id": old}, {"$set": {"created_at": now - timedelta(minutes=30)}})
    hook = {"type": "webhook", "url": "https://hooks.example.org/x", "secret": SECRET}
    for body in ({"event": "worker.offline"}, {"event": "worker.temperature", "threshold": 85, "sensor": "gpu"},
                 {"event": "worker.temperature", "threshold": 85, "sensor": "cpu"},
                 {"event": "worker.disk", "threshold": 95}, {"event": "queue.age", "threshold": 10},
                 {"event": "queue.age", "threshold": 10, "function": "noop"}):
        notify.subscribe(store, {**body, "channel": hook}, ADMIN)
    notifier = Notifier(store, fast())
    assert notifier.check_once(now) == 4  # m2 offline, m1's GPU hot, m1's disk full, the queue is old
    by_event = {d["event"]: d["payload"] for d in store.db.deliveries.find({})}
    assert by_event["worker.offline"]["subject"] == "m2"
    assert by_event["worker.temperature"]["detail"]["celsius"] == 91
    assert by_event["worker.disk"]["detail"]["disk_percent"] == 97.5
    assert by_event["queue.age"]["detail"]["oldest_task"] == old
    # A condition that persists does not notify again; once cleared and back, it does
    assert notifier.check_once(now + timedelta(seconds=30)) == 0
    store.db.workers.update_one({"_id": "m2"}, {"$set": {"state": "online"}})
    assert notifier.check_once(now + timedelta(seconds=60)) == 0
    store.db.workers.update_one({"_id": "m2"}, {"$set": {"state": "offline"}})
    assert notifier.check_once(now + timedelta(seconds=90)) == 1
    subject, text = notify.describe(by_event["worker.disk"])
    assert "m1" in subject and "97.5" in text


@pytest.fixture
def api(store, db_uri, db_name):
    from tests import apiserver

    server = apiserver.start(store, db_uri, db_name)
    yield server
    server.server.stop()


BAD = [
    ({"event": "task.failed", "channel": {"type": "webhook", "url": "ftp://example.org/hook"}}, "http://"),
    ({"event": "task.failed", "channel": {"type": "webhook", "url": "file:///etc/passwd"}}, "http://"),
    ({"event": "task.failed", "channel": {"type": "webhook", "url": "javascript:alert(1)"}}, "http://"),
    ({"event": "task.failed", "channel": {"type": "webhook", "url": "http://"}}, "name a host"),
    ({"event": "task.failed", "channel": {"type": "webhook", "url": "https://x.org", "secret": "short"}}, "16"),
    ({"event": "task.failed", "channel": {"type": "email", "to": "not-an-address"}}, "e-mail address"),
    ({"event": "task.failed", "channel": {"type": "pager", "to": "+86"}}, "'channel'"),
    ({"event": "task.exploded", "channel": {"type": "email", "to": "a@b.org"}}, "'event'"),
    ({"event": "worker.disk", "channel": {"type": "email", "to": "a@b.org"}}, "threshold"),
    ({"event": "worker.disk", "threshold": 150, "channel": {"type": "email", "to": "a@b.org"}}, "threshold"),
    ({"event": "task.failed", "worker": "m1", "channel": {"type": "email", "to": "a@b.org"}}, "'worker'"),
    ({"event": "task.failed", "colour": "red", "channel": {"type": "email", "to": "a@b.org"}}, "unknown field"),
]


def test_bad_subscriptions_get_clear_errors_and_write_nothing(api, store):
    for body, words in BAD:
        resp = api.call("POST", "/subscriptions", "business", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert words in resp.json()["error"]["message"], (body, resp.text)
    assert store.db.subscriptions.count_documents({}) == 0


def test_subscriptions_and_deliveries_api(api, store):
    made = api.call("POST", "/subscriptions", "business", json={
        "event": "task.failed", "channel": {"type": "webhook", "url": "https://hooks.example.org/a"}})
    assert made.status_code == 201, made.text
    sub = made.json()
    assert len(sub["channel"]["secret"]) >= 16 and sub["owner"] == "u-business"
    listed = api.call("GET", "/subscriptions", "business").json()
    assert listed["total"] == 1 and "secret" not in listed["items"][0]["channel"]
    assert api.call("GET", "/subscriptions", "super").json()["total"] == 0
    assert api.call("GET", "/subscriptions?all=1", "admin").json()["total"] == 1
    # a delivery of it is listed to its owner only
    Notifier(store, fast())._queue(store.db.subscriptions.find_one(), "task.failed", "k1", {"task": {"id": "t"}},
                                   server_now(store.db))
    mine = api.call("GET", "/deliveries?status=pending", "business").json()
    assert mine["total"] == 1 and mine["items"][0]["payload"]["task"]["id"] == "t"
    assert api.call("GET", "/deliveries", "general").json()["total"] == 0
    assert api.call("DELETE", f"/subscriptions/{sub['id']}", "general").status_code == 404
    assert api.call("DELETE", f"/subscriptions/{sub['id']}", "business").json()["deleted"] is True
    assert store.db.subscriptions.count_documents({}) == 0
