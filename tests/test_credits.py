"""Credits against a real server, a real mongod and a real worker: reservation at publish (402 and
nothing written when unpaid), 50 concurrent publishes that never overdraw, settlement (the unused
part back, lost attempts free, cancels refunded), top-ups, ledgers, and the low-balance reminder."""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from pymongo.read_concern import ReadConcern

from fsm import pricing
from fsm.store import Claimant
from scheduler import credits
from scheduler.notify import Notifier
from tests.apiserver import start
from tests.procs import wait_for
from tests.test_notify import fast, receiver  # noqa: F401 - the webhook receiver fixture
from tests.test_registry import make_repo

BOB = "u-business"
BURN = '''import time


def burn(seconds):
    """Spin the CPU for ``seconds`` of CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return seconds
'''


@pytest.fixture
def api(store, db_uri, db_name, tmp_path):
    running = start(store, db_uri, db_name, threads=16, registry_cache_dir=str(tmp_path / "cache"),
                    repo_roots=(str(tmp_path / "repos"),))
    yield running
    running.server.stop()


def register_burn(api, tmp_path, price=None, version="1.0"):
    """Register ``burn`` (a real git repository) as a public function version with ``price``."""
    if not (tmp_path / "repos" / "burners").exists():
        repo = make_repo(tmp_path / "repos" / "burners", {"burner.py": BURN}, tag="v1")
        resp = api.call("POST", "/repos", "admin", json={"location": str(repo), "name": "burners"})
        assert resp.status_code == 201, resp.text
    reg = {"repo": "burners", "ref": "v1", "entrypoint": "burner:burn", "code": "burn", "version": version,
           "public": True, **({"price": price} if price is not None else {})}
    resp = api.call("POST", "/functions", "super", json=reg)
    assert resp.status_code == 201, resp.text
    return resp.json()


def service(api, name="paid", per_call=1.5):
    """A service over the built-in echo that costs ``per_call`` credits."""
    resp = api.call("POST", "/services", "admin", json={"name": name, "function": "echo", "version": "builtin",
                                                         "price": per_call})
    assert resp.status_code == 201, resp.text


def top_up(api, user, amount, note=None):
    resp = api.call("POST", f"/users/{user}/credits", "admin", json={"amount": amount, "note": note})
    assert resp.status_code == 200, resp.text
    return resp.json()


def balance(api, user=BOB) -> float:
    return api.store.ledger.account(f"user:{user}")["balance"]


def billing_state(api) -> dict:
    """Every document a publish or a top-up could write (the wake-up signal for workers included: written
    with w:1, so read locally)."""
    return {name: sorted(map(repr, api.store.db.get_collection(name, read_concern=ReadConcern("local")).find({})))
            for name in ("tasks", "accounts", "ledger", "wakeups", "lanes")}


def test_fifty_concurrent_publishes_never_overdraw(api):
    # Given one user whose balance pays for exactly N of 50 priced calls,
    service(api, per_call=1.5)
    n, tried, start_balance = 20, 50, 1.5 * 20
    top_up(api, BOB, start_balance)
    barrier = threading.Barrier(tried)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def call():
        session = requests.Session()
        barrier.wait()
        resp = session.post(f"{api.url}/tasks", json={"service": "paid", "args": [1]},
                            headers={"Authorization": f"Bearer {api.tokens['business']}"}, timeout=60)
        with lock:
            answers.append(resp)

    # when 50 threads publish at once,
    threads = [threading.Thread(target=call) for _ in range(tried)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    accepted = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code == 402]
    final = balance(api)
    print(f"\ncredits concurrency: tried {tried} / accepted {len(accepted)} / refused {len(refused)} / "
          f"final balance {final:g} (start {start_balance:g}, price 1.5)")
    # then exactly N were accepted, the rest refused with insufficient_credits, and the books balance.
    assert len(answers) == tried and len(accepted) == n and len(refused) == tried - n
    assert all(r.json()["error"]["code"] == "insufficient_credits" for r in refused)
    reserved = sum(r.json()["billing"]["reserved"] for r in accepted)
    assert final >= 0 and final == pytest.approx(start_balance - reserved) and final == pytest.approx(0)
    assert api.store.db.tasks.count_documents({"service": "paid"}) == n
    assert api.store.ledger.sums(f"user:{BOB}") == pytest.approx(final)
    reserves = list(api.store.db.ledger.find({"account": f"user:{BOB}", "reason": "reserve"}))
    assert len(reserves) == n and sum(e["amount"] for e in reserves) == pytest.approx(-reserved)
    assert {e["task"] for e in reserves} == {r.json()["id"] for r in accepted}


def test_an_unpaid_publish_is_402_and_writes_nothing(api):
    service(api, per_call=5)
    top_up(api, BOB, 4)
    before = billing_state(api)
    resp = api.call("POST", "/tasks", "business", json={"service": "paid"})
    assert resp.status_code == 402
    error = resp.json()["error"]
    assert error["code"] == "insufficient_credits" and error["balance"] == 4 and error["needed"] == 5
    assert "user:u-business" in error["message"]
    # a bulk request that cannot be paid in full stores none of its tasks
    bulk = api.call("POST", "/tasks", "business", json=[{"service": "paid"}, {"function": "echo", "args": [1]}])
    assert bulk.status_code == 402
    assert billing_state(api) == before
    # free tasks pass without an account at all
    free = api.call("POST", "/tasks", "business", json={"function": "echo", "args": [1]})
    assert free.status_code == 201 and "billing" not in free.json() and "settled" not in free.json()


def test_cancel_before_running_refunds_in_full(api):
    service(api, per_call=2)
    top_up(api, BOB, 10)
    task = api.call("POST", "/tasks", "business", json={"service": "paid"}).json()
    assert task["billing"] == {"account": "user:u-business", "reserved": 2, "charged": None}
    assert task["settled"] is False and balance(api) == 8
    resp = api.call("POST", f"/tasks/{task['id']}/cancel", "business")
    assert resp.status_code == 200
    done = resp.json()
    assert done["settled"] is True and done["billing"]["charged"] == 0 and balance(api) == 10
    reasons = [e["reason"] for e in api.store.db.ledger.find({"task": task["id"]}).sort("at", 1)]
    assert reasons == ["reserve", "refund"]
    # settling again (the sweep after the prompt settlement) changes nothing
    assert credits.settle_due(api.store) == 0 and balance(api) == 10


def _claim(store, worker, lease_s=15.0):
    claim = store.tasks.claim_next(Claimant(worker, lease_s=lease_s))
    assert claim is not None
    return claim


def test_lost_attempts_are_not_charged_and_the_retry_is_charged_once(api, store, tmp_path):
    # Given a priced function task (per call and per CPU-second) that runs three times:
    register_burn(api, tmp_path, {"per_call": 1, "per_cpu_s": 2})
    top_up(api, BOB, 100)
    task = api.call("POST", "/tasks", "business", json={"function": "burn", "args": [0], "timeout_s": 10,
                                                         "max_retries": 3, "retry_backoff_s": 0}).json()
    assert task["billing"]["reserved"] == 21 and balance(api) == 79  # 1 + 2 x 1 core x 10 s
    # a worker fences its attempt (lost: the system's fault, though it measured 4 CPU-seconds),
    first = _claim(store, "w1")
    store.tasks.finish_attempt(task["id"], first.attempt_id, "lost", error="fenced", worker="w1",
                               usage={"cpu_s": 4.0})
    # a second attempt's lease expires (its worker vanished),
    _claim(store, "w2", lease_s=0.3)
    time.sleep(1.0)
    assert store.tasks.requeue_expired() == 1
    # and the third succeeds after 1.5 CPU-seconds
    third = _claim(store, "w3")
    store.tasks.finish_attempt(task["id"], third.attempt_id, "succeeded", result=1, worker="w3",
                               usage={"cpu_s": 1.5, "gpu_s": 0.0})
    assert credits.settle_due(api.store) == 1
    stored = store.tasks.get(task["id"])
    # then only the third is charged: 1 per call + 2 x 1.5 CPU-seconds, once; the rest comes back
    assert [a["state"] for a in stored["attempts"]] == ["lost", "lost", "succeeded"]
    assert stored["billing"]["charged"] == 4 and stored["settled"] is True
    assert balance(api) == 96 and api.store.ledger.sums("user:u-business") == 96
    assert credits.settle_due(api.store) == 0 and balance(api) == 96


def test_a_real_worker_measures_cpu_and_the_unused_part_comes_back(api, store, cluster, tmp_path):
    # Given a function version priced per call and per CPU-second, and a real worker,
    registered = register_burn(api, tmp_path, {"per_call": 0.5, "per_cpu_s": 1})
    assert registered["price"] == {"per_call": 0.5, "per_cpu_s": 1}
    top_up(api, BOB, 50)
    cluster.start_worker("w1", concurrency=1)
    # when a task that may run 10 s burns 0.4 CPU-seconds,
    task = api.call("POST", "/tasks", "business", json={"function": "burn", "args": [0.4], "timeout_s": 10}).json()
    assert task["billing"]["reserved"] == 10.5 and balance(api) == 39.5
    wait_for(lambda: store.tasks.get(task["id"])["status"] == "succeeded", 60, what="the task")
    assert credits.settle_due(api.store) == 1
    # then it is charged what the worker measured, capped at the reservation, and the rest returned
    done = api.call("GET", f"/tasks/{task['id']}", "business").json()
    cpu_s = done["attempts"][0]["cpu_s"]
    assert 0.35 <= cpu_s < 5 and done["attempts"][0]["gpu_s"] == 0
    assert done["billing"]["charged"] == pytest.approx(0.5 + cpu_s, abs=1e-5) and done["settled"] is True
    assert balance(api) == pytest.approx(50 - 0.5 - cpu_s, abs=1e-5)
    ledger = api.call("GET", f"/users/{BOB}/ledger", "business").json()
    assert [e["reason"] for e in ledger["items"]] == ["refund", "reserve", "topup"]
    assert ledger["items"][0]["amount"] == pytest.approx(10.5 - 0.5 - cpu_s, abs=1e-5)
    assert ledger["credits"]["balance"] == pytest.approx(balance(api))


def test_the_leader_sweep_settles_without_being_asked(store, db_uri, db_name):
    running = start(store, db_uri, db_name, run_scheduler=True, credits_settle_s=0.2, leader_lease_s=2)
    try:
        service(running, per_call=3)
        top_up(running, BOB, 10)
        task = running.call("POST", "/tasks", "business", json={"service": "paid", "max_retries": 0}).json()
        claim = _claim(store, "w1")
        store.tasks.finish_attempt(task["id"], claim.attempt_id, "failed", error="boom", worker="w1")
        # the task failed by its own error after running: charged per call, settled by the sweep alone
        wait_for(lambda: store.tasks.get(task["id"]).get("settled") is True, 20, what="the sweep")
        assert store.tasks.get(task["id"])["billing"]["charged"] == 3 and balance(running) == 7
    finally:
        running.server.stop()


def test_top_ups_refuse_bad_amounts_and_non_admins(api):
    top_up(api, BOB, 5)
    before = billing_state(api) | {"audit": api.store.db.audit.count_documents({})}
    for bad in ({"amount": "5"}, {"amount": True}, {"amount": 0}, {"amount": None}, {}, {"amount": 1e13},
                {"amount": 5, "extra": 1}, {"amount": 5, "note": "x" * 501}, {"amount": 5, "note": 7},
                {"amount": -6}, {"amount": 1e-9}, [5]):
        resp = api.call("POST", f"/users/{BOB}/credits", "admin", json=bad)
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.json()["error"]["code"] == "invalid" and resp.json()["error"]["message"]
    assert api.call("POST", f"/users/{BOB}/credits", "super", json={"amount": 5}).status_code == 403
    assert api.call("POST", f"/users/{BOB}/credits", "business", json={"amount": 5}).status_code == 403
    assert api.call("POST", "/users/nobody/credits", "admin", json={"amount": 5}).status_code == 404
    assert api.call("POST", "/groups/nogroup/credits", "admin", json={"amount": 5}).status_code == 404
    assert billing_state(api) | {"audit": api.store.db.audit.count_documents({})} == before
    # a correction down to zero is allowed, and audited as credits.topup
    fixed = top_up(api, BOB, -5, "refund of an invoice")
    assert fixed["balance"] == 0 and fixed["entry"]["reason"] == "correction"
    audit = api.call("GET", "/audit?action=credits.topup", "admin").json()["items"]
    assert [(a["target"], a["details"]["amount"]) for a in audit] == [("user:u-business", -5), ("user:u-business", 5)]


def test_ledgers_and_balances_are_shown_to_the_user_and_admins_only(api):
    top_up(api, BOB, 12.5, "welcome")
    me = api.call("GET", f"/users/{BOB}", "business").json()
    assert me["credits"] == {"account": "user:u-business", "balance": 12.5, "low_notified": False}
    assert api.call("GET", "/whoami", "business").json()["credits"]["balance"] == 12.5
    own = api.call("GET", f"/users/{BOB}/ledger", "business")
    assert own.status_code == 200
    entry = own.json()["items"][0]
    assert (entry["amount"], entry["balance_after"], entry["reason"], entry["by"], entry["note"]) == \
        (12.5, 12.5, "topup", "admin", "welcome")
    assert api.call("GET", f"/users/{BOB}/ledger", "admin").json()["total"] == 1
    for role in ("super", "general"):
        resp = api.call("GET", f"/users/{BOB}/ledger", role)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"
    assert api.call("GET", "/users/nobody/ledger", "admin").status_code == 404
    assert api.call("GET", f"/users/{BOB}/ledger?limit=0", "business").status_code == 422
    assert api.call("GET", f"/users/{BOB}/ledger?color=red", "business").status_code == 422
    # paging
    for _ in range(3):
        top_up(api, BOB, 1)
    page = api.call("GET", f"/users/{BOB}/ledger?limit=2&skip=1", "business").json()
    assert page["total"] == 4 and len(page["items"]) == 2 and page["items"][0]["balance_after"] == 14.5
    paths = api.call("GET", "/openapi.json", "admin").json()["paths"]
    assert "post" in paths["/users/{name}/credits"] and "get" in paths["/users/{name}/ledger"]
    assert "post" in paths["/groups/{name}/credits"]


def test_a_group_pays_for_its_members_only(api):
    service(api, per_call=2)
    assert api.call("POST", "/groups", "admin", json={"name": "lab", "partitions": []}).status_code == 201
    assert api.call("PATCH", f"/users/{BOB}", "admin", json={"groups": ["lab"]}).status_code == 200
    assert api.call("POST", "/groups/lab/credits", "admin", json={"amount": 6}).status_code == 200
    paid = api.call("POST", "/tasks", "business", json={"service": "paid", "billing_group": "lab"})
    assert paid.status_code == 201 and paid.json()["billing"]["account"] == "group:lab"
    assert api.call("GET", "/groups/lab", "admin").json()["credits"]["balance"] == 4
    assert balance(api) == 0
    # a bulk request with two payers, one of whom cannot pay, writes nothing for either
    before = billing_state(api)
    both = api.call("POST", "/tasks", "business", json=[{"service": "paid", "billing_group": "lab"},
                                                        {"service": "paid"}])
    assert both.status_code == 402 and both.json()["error"]["account"] == "user:u-business"
    assert billing_state(api) == before
    assert top_up(api, BOB, 2)["balance"] == 2
    two = api.call("POST", "/tasks", "business", json=[{"service": "paid", "billing_group": "lab"},
                                                       {"service": "paid"}])
    assert two.status_code == 201 and balance(api) == 0
    assert api.call("GET", "/groups/lab", "admin").json()["credits"]["balance"] == 2
    before = billing_state(api)
    stranger = api.call("POST", "/tasks", "super", json={"service": "paid", "billing_group": "lab"})
    assert stranger.status_code == 403 and stranger.json()["error"]["field"] == "billing_group"
    bad = api.call("POST", "/tasks", "super", json={"service": "paid", "billing_group": "no such!"})
    assert bad.status_code == 422
    assert billing_state(api) == before


def test_function_prices_are_validated_and_shown(api, tmp_path):
    register_burn(api, tmp_path, version="0.1")  # the repository, and a free version
    reg = {"repo": "burners", "ref": "v1", "entrypoint": "burner:burn", "code": "burn", "version": "1.0"}
    for bad in ({"per_cpu_s": -1}, {"per_hour": 1}, {"per_call": "1"}, [1], 5):
        resp = api.call("POST", "/functions", "super", json={**reg, "price": bad})
        assert resp.status_code == 422 and "price" in resp.json()["error"]["message"], resp.text
    assert api.store.db.functions.count_documents({"code": "burn", "version": "1.0"}) == 0
    assert api.call("POST", "/functions", "super", json=reg).status_code == 201
    changed = api.call("PATCH", "/functions/burn/1.0", "super", json={"price": {"per_gpu_s": 2, "per_call": 1}})
    assert changed.status_code == 200 and changed.json()["price"] == {"per_gpu_s": 2, "per_call": 1}
    assert api.call("GET", "/functions/burn/1.0", "admin").json()["price"] == {"per_gpu_s": 2, "per_call": 1}
    assert api.call("PATCH", "/functions/burn/1.0", "super", json={"price": {"per_gpu_s": -2}}).status_code == 422
    # a GPU task reserves per GPU for its whole timeout
    top_up(api, "u-super", 100)
    task = api.call("POST", "/tasks", "super", json={"function": "burn", "version": "1.0", "args": [0],
                                                     "timeout_s": 5, "requires": {"gpus": 2}}).json()
    assert task["billing"]["reserved"] == 1 + 2 * 2 * 5
    assert api.call("PATCH", "/functions/burn/1.0", "super", json={"price": None}).json()["price"] is None
    assert "billing" not in api.call("POST", "/tasks", "super", json={"function": "burn", "version": "1.0",
                                                                      "args": [0]}).json()


def test_a_low_balance_sends_one_reminder_until_the_next_top_up(api, store, receiver):  # noqa: F811
    hook = receiver()
    service(api, per_call=4)
    created = api.call("POST", "/subscriptions", "business", json={"event": "credits.low",
                                                                   "channel": {"type": "webhook", "url": hook.url}})
    assert created.status_code == 201, created.text
    top_up(api, BOB, 12)
    # one round of each leader job at a time, called here (a running checks job would race these calls)
    notifier = Notifier(store, fast(credits_low_threshold=10))
    try:
        assert notifier.check_once() == 0  # 12 is not low
        assert api.call("POST", "/tasks", "business", json={"service": "paid"}).status_code == 201  # 12 -> 8
        assert notifier.check_once() == 1
        assert notifier.deliver_once()["status"] == "sent" and len(hook.requests) == 1
        payload = json.loads(hook.requests[0][1])
        assert payload["event"] == "credits.low" and payload["detail"]["balance"] == 8
        assert payload["detail"]["account"] == "user:u-business"
        assert api.call("GET", f"/users/{BOB}", "business").json()["credits"]["low_notified"] is True
        # further spending in the same episode raises nothing more
        assert api.call("POST", "/tasks", "business", json={"service": "paid"}).status_code == 201  # 8 -> 4
        assert notifier.check_once() == 0
        # a top-up starts a new episode: still under the threshold, so one more reminder
        top_up(api, BOB, 1)
        assert notifier.check_once() == 1
        assert notifier.deliver_once()["status"] == "sent" and len(hook.requests) == 2
        assert notifier.check_once() == 0 and notifier.deliver_once() is None
    finally:
        notifier.stop()


@pytest.mark.parametrize("price, requires, timeout_s, reserved", [
    (None, {}, 10, 0), ({"per_call": 0}, {}, 10, 0), ({"per_call": 2}, {}, 10, 2),
    ({"per_cpu_s": 0.5}, {}, 10, 5), ({"per_cpu_s": 0.5}, {"cpus": 4}, 10, 20),
    ({"per_call": 1, "per_cpu_s": 0.1, "per_gpu_s": 1}, {"cpus": 2, "gpus": 2}, 100, 1 + 20 + 200)])
def test_reservation_table(price, requires, timeout_s, reserved):
    assert pricing.reservation(price, requires, timeout_s) == pytest.approx(reserved)


def test_charge_table():
    price = {"per_call": 1, "per_cpu_s": 2, "per_gpu_s": 10}
    ran = [{"state": "succeeded", "cpu_s": 1.5, "gpu_s": 0.1}]
    assert pricing.charge(price, ran, 100) == pytest.approx(1 + 3 + 1)
    assert pricing.charge(price, ran, 2) == 2  # capped at the reservation
    assert pricing.charge(price, [], 100) == 0  # cancelled before running
    assert pricing.charge(price, [{"state": "lost", "cpu_s": 50}], 100) == 0  # the system's fault
    assert pricing.charge(None, ran, 100) == 0


def test_a_reservation_whose_task_was_never_stored_comes_back_once(api, store):
    # Given three reservations: one whose task is stored, one a refused request already gave back,
    # and one left behind by a server that stopped between the reservation and the insert,
    service(api, per_call=2)
    top_up(api, BOB, 10)
    kept = api.call("POST", "/tasks", "business", json={"service": "paid"}).json()
    store.ledger.reserve("user:u-business", [("undone-1", 1)], "u-business")
    store.ledger.credit("user:u-business", [("undone-1", 1)], "reserve_undone", "u-business")
    store.ledger.reserve("user:u-business", [("ghost-1", 3)], "u-business")
    assert balance(api) == 5
    # nothing is given back while the insert may still be on its way,
    assert credits.return_orphans(store) == 0
    # then only the orphan comes back, once
    assert credits.return_orphans(store, grace_s=0) == 1 and balance(api) == 8
    assert credits.return_orphans(store, grace_s=0) == 0 and balance(api) == 8
    back = store.db.ledger.find_one({"task": "ghost-1", "reason": "reserve_undone"})
    assert back["amount"] == 3 and back["by"] == "settlement"
    assert store.db.ledger.count_documents({"task": kept["id"]}) == 1
    assert store.ledger.sums("user:u-business") == 8


def test_the_task_page_shows_what_was_reserved_and_charged(api):
    service(api, per_call=2)
    top_up(api, "admin", 5)
    task = api.publish({"service": "paid"})
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api.tokens['admin']}"
    page = session.get(f"{api.base}/tasks/{task['id']}", timeout=30)
    assert page.status_code == 200 and "2 reserved from user:admin" in page.text
    api.call("POST", f"/tasks/{task['id']}/cancel", "admin")
    assert "charged 0, the rest returned" in session.get(f"{api.base}/tasks/{task['id']}", timeout=30).text


def test_the_sdk_tops_up_and_reads_credits(api):
    from suanwang.sdk import ApiError, Client

    with Client(api.base, api.tokens["admin"]) as admin, Client(api.base, api.tokens["business"]) as bob:
        done = admin.top_up(BOB, 7.25, note="sdk")
        assert done["balance"] == 7.25 and done["entry"]["note"] == "sdk"
        assert bob.credits(BOB) == {"account": "user:u-business", "balance": 7.25, "low_notified": False}
        assert bob.ledger(BOB)["items"][0]["amount"] == 7.25
        with pytest.raises(ApiError) as refused:
            bob.top_up(BOB, 100)
        assert refused.value.http_status == 403 and balance(api) == 7.25


def test_a_schedule_of_a_service_fires_as_its_owner_and_pays(api):
    """A schedule's firing is a publish by its owner: a service is resolved to its deployed version,
    each firing reserves the owner's credits, and one that cannot be paid is not published."""
    from datetime import timedelta

    from scheduler import schedules

    # Given a priced service and a business user with credit for exactly two calls
    service(api, per_call=2)
    top_up(api, BOB, 4)
    resp = api.call("POST", "/schedules", "business", json={"id": "paid-daily", "cron": "0 3 * * *",
                                                             "task": {"service": "paid", "args": ["hi"]}})
    assert resp.status_code == 201, resp.text
    # (a template naming an unknown service is refused at once, as a publish would be)
    bad = api.call("POST", "/schedules", "business", json={"cron": "0 3 * * *", "task": {"service": "nope"}})
    assert bad.status_code == 404 and "nope" in bad.json()["error"]["message"]
    # When it fires three times
    at = api.store.now().replace(microsecond=0)
    fired = [schedules.fire_once(api.store, "paid-daily", at + timedelta(minutes=i)) for i in range(3)]
    # Then two tasks of the service's deployed version were published as the owner and paid for,
    assert fired[0] and fired[1] and fired[2] is None
    tasks = [api.store.tasks.get(t) for t in fired[:2]]
    assert all(t["service"] == "paid" and t["function"] == "echo" and t["submitted_by"] == BOB
               and t["schedule_id"] == "paid-daily" and t["billing"]["reserved"] == 2 for t in tasks)
    assert balance(api) == 0
    # the third was refused for credit: the schedule says why, and nothing was stored for it
    sched = api.call("GET", "/schedules/paid-daily", "business").json()
    assert "credit" in sched["last_error"] and "user:u-business" in sched["last_error"]
    assert api.store.db.tasks.count_documents({"schedule_id": "paid-daily"}) == 2
    # and a repeated firing (a hand-over) publishes nothing and gives its reservation back
    top_up(api, BOB, 2)
    assert schedules.fire_once(api.store, "paid-daily", at) is None
    assert balance(api) == 2 and api.store.ledger.sums(f"user:{BOB}") == pytest.approx(2)
