"""The web pages in a real browser: Playwright driving Debian's Chromium against a real server.

Screenshots of every page land in test-artifacts/screenshots/.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import web
from fsm.store import Store
from fsm.store.spec import validate
from fsm.store.tasks import Claimant
from scheduler.server import Server
from scheduler.config import ServerConfig

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
N_TASKS = 20_000
PASSWORD = "correct-horse-1"

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def site(mongo, tmp_path_factory):
    """A real server over a database of 20,000 tasks, a worker and three users."""
    from fsm.store import database

    db = database(mongo.uri, "web_browser")
    db.client.drop_database("web_browser")
    store = Store(db)
    for role in ("super", "general", "admin"):
        store.users.add(f"{role}1", role, PASSWORD)
    functions = ["train_model", "render_frames", "echo", "sleep"]
    for start in range(0, N_TASKS, 5000):
        store.tasks.insert([store.tasks.document(validate({
            "function": functions[i % 4], "args": [i], "priority": i % 10}),
            "general1" if i % 1000 == 0 else "super1") for i in range(start, start + 5000)])
    store.db.workers.insert_one({
        "_id": "gpu-box-1", "host": "gpu-box-1", "addresses": ["10.0.0.7"], "state": "online", "pid": 1,
        "last_seen": store.db.client.admin.command("hello")["localTime"], "concurrency": 4, "running": [],
        "cpu": {"percent": 37.5, "per_core": [30, 45], "count": 2}, "load": [0.5, 0.4, 0.3],
        "mem": {"percent": 61.0, "used": 6e9, "total": 16e9}, "disk": {"percent": 42.0, "used": 42e9, "total": 100e9},
        "temps": {}, "gpus": [], "gpu_note": "no NVIDIA driver (NVMLError_LibraryNotFound)", "tags": ["cpu"]})
    store.db.workers.insert_one({
        "_id": "gpu-box-2", "host": "gpu-box-2", "addresses": ["10.0.0.8"], "state": "online", "pid": 1,
        "last_seen": store.db.client.admin.command("hello")["localTime"], "concurrency": 2, "running": [],
        "cpu": {"percent": 91.0, "per_core": [90, 92], "count": 2}, "load": [1.9, 1.5, 1.2],
        "mem": {"percent": 75.0, "used": 48e9, "total": 64e9}, "disk": {"percent": 12.0, "used": 12e9, "total": 100e9},
        "temps": {"cpu": 71.0}, "tags": ["gpu"], "gpus": [{"index": 0, "name": "NVIDIA H100", "util": 64.0,
                                                            "mem_used": 40e9, "mem_total": 80e9, "temp": 66}]})
    # one task ran to success on gpu-box-1 and another runs there now, claimed and finished through the FSM
    box = Claimant("gpu-box-1")
    done = store.tasks.claim_next(box)
    store.tasks.finish_attempt(done.task_id, done.attempt_id, "succeeded", result={"loss": 0.031},
                               logs="epoch 1 loss 0.20\nepoch 2 loss 0.031\n", worker="gpu-box-1")
    running = store.tasks.claim_next(box)
    store.db.workers.update_one({"_id": "gpu-box-1"}, {"$set": {"running": [running.attempt_id]}})
    # three hours of downsampled heartbeat history, as the worker's heartbeat records it
    now = store.db.client.admin.command("hello")["localTime"]
    store.db.worker_samples.insert_many([
        {"worker": name, "at": now - timedelta(seconds=60 * i), "cpu": 30 + 20 * ((i // 20) % 2) + k * 40,
         "mem": 55.0 + k * 20, "load": 0.5,
         "gpus": [{"index": 0, "util": 50.0 + (i % 30), "mem_used": 1, "temp": 60}] if k else []}
        for k, name in enumerate(("gpu-box-1", "gpu-box-2")) for i in range(180)])
    http = Server(ServerConfig(mongo_uri=mongo.uri, db_name="web_browser", run_scheduler=False, port=0),
                  store, extensions=(web.init_app,)).start()
    yield http.url, store
    http.stop()
    db.client.drop_database("web_browser")


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def login(browser, base, name, viewport=None):
    page = browser.new_page(viewport=viewport or {"width": 1366, "height": 850})
    page.goto(f"{base}/tasks")
    assert "/login" in page.url  # pages need a login
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/tasks")
    return page


def test_login_rejects_a_wrong_password(site, browser):
    base, _ = site
    page = browser.new_page()
    page.goto(f"{base}/login")
    page.fill("#name", "super1")
    page.fill("#password", "wrong-password")
    page.click("button[type=submit]")
    assert "wrong user name or password" in page.content()
    page.screenshot(path=SHOTS / "login-refused.png")
    page.close()


def test_tasks_table_pages_sorts_and_searches_on_the_server(site, browser):
    base, store = site
    page = browser.new_page(viewport={"width": 1366, "height": 850})
    page.goto(f"{base}/login")
    page.fill("#name", "super1")
    page.fill("#password", PASSWORD)
    with page.expect_response(lambda r: "/data/tasks" in r.url) as first:
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}/tasks")
    data = first.value.json()
    # page 1 only: the data request carries one page, not 20,000 rows
    assert data["recordsTotal"] == N_TASKS and len(data["data"]) == 25
    page.wait_for_selector("#tasks tbody tr td a")
    assert page.locator("#tasks tbody tr").count() == 25
    page.screenshot(path=SHOTS / "tasks.png", full_page=True)

    # sorting by priority (descending after two clicks) is done by MongoDB
    header = page.locator("#tasks thead th", has_text="priority")
    with page.expect_response(lambda r: "/data/tasks" in r.url):
        header.click()
    with page.expect_response(lambda r: "/data/tasks" in r.url) as sorted_resp:
        header.click()
    priorities = [row["priority"] for row in sorted_resp.value.json()["data"]]
    assert priorities == sorted(priorities, reverse=True) and priorities[0] == 9

    # searching by function prefix
    with page.expect_response(lambda r: "/data/tasks" in r.url and "search" in r.url and "render" in r.url) as found:
        page.fill("input[type=search]", "render")
    body = found.value.json()
    assert body["recordsFiltered"] == store.db.tasks.count_documents({"function": "render_frames"})
    assert body["data"] and all(row["function"] == "render_frames" for row in body["data"])

    # a super-user re-prioritises the first row; MongoDB shows it
    page.wait_for_function("document.querySelector('#tasks tbody tr button.act') !== null")
    task_id = page.locator("#tasks tbody tr").first.locator("button.act").first.get_attribute("data-id")
    page.once("dialog", lambda dialog: dialog.accept("99"))
    with page.expect_response(lambda r: "/actions/tasks" in r.url) as acted:
        page.locator("#tasks tbody tr").first.locator("button[data-act=priority]").click()
    assert acted.value.status == 200 and acted.value.json()["done"] == 1
    assert store.tasks.get(task_id)["priority"] == 99
    page.wait_for_selector("#outcome.alert-success")
    assert "1 done" in page.inner_text("#outcome")

    # a queued row offers only what the FSM allows from queued (no re-queue), and asked anyway,
    # the server refuses it, says why and changes nothing
    row = page.locator("#tasks tbody tr", has=page.locator(f"button[data-id='{task_id}']"))
    assert row.locator("button[data-act=requeue]").count() == 0 and row.locator("button[data-act=cancel]").count() == 1
    token = page.get_attribute("meta[name=csrf-token]", "content")
    asked = page.request.post(f"{base}/actions/tasks", form={"action": "requeue", "ids": task_id},
                              headers={"X-CSRFToken": token, "Accept": "application/json"}).json()
    assert asked["failed"] == 1 and "cannot go from queued" in asked["results"][0]["error"]
    assert store.tasks.get(task_id)["status"] == "queued"

    # selected rows: cancel two at once
    boxes = page.locator("#tasks tbody input.pick")
    picked = [boxes.nth(i).get_attribute("value") for i in (1, 2)]
    boxes.nth(1).check()
    boxes.nth(2).check()
    with page.expect_response(lambda r: "/actions/tasks" in r.url) as bulk:
        page.click("button[data-bulk=cancel]")
    assert bulk.value.json()["done"] == 2
    assert {store.tasks.get(t)["status"] for t in picked} == {"cancelled"}

    # the whole page at once: disable its 25 rows; the two cancelled ones are refused by the FSM
    page.wait_for_function("document.getElementById('selected-count').textContent === '0'")
    page.check("#pick-page")
    assert page.inner_text("#selected-count") == "25"
    with page.expect_response(lambda r: "/actions/tasks" in r.url) as bulk:
        page.click("button[data-bulk=disable]")
    assert (bulk.value.json()["done"], bulk.value.json()["failed"]) == (23, 2)
    assert store.db.tasks.count_documents({"is_enabled": False}) == 23
    page.wait_for_selector("#outcome:has-text('23 done, 2 refused')")

    # a forged request without the CSRF token is refused, and changes nothing
    forged = page.request.post(f"{base}/actions/tasks", form={"action": "cancel", "ids": task_id})
    assert forged.status == 403 and "csrf_failed" in forged.text() and "CSRF" in forged.text()
    assert store.tasks.get(task_id)["status"] == "queued"

    # the task page: a super-user re-prioritises through its form and sees the outcome
    page.goto(f"{base}/tasks/{task_id}")
    assert "History" in page.content() and task_id in page.content()
    page.fill("#task-actions input[name=value]", "7")
    page.click("#task-actions button[value=priority]")
    page.wait_for_selector(".alert-success:has-text('priority: 1 done')")
    assert store.tasks.get(task_id)["priority"] == 7

    # a finished task shows its timeline, its attempt on a worker, the logs tail and the result
    finished = store.db.tasks.find_one({"status": "succeeded"})
    page.goto(f"{base}/tasks/{finished['_id']}")
    assert '"loss": 0.031' in page.inner_text("#result")
    assert "gpu-box-1" in page.inner_text(".attempt") and page.locator(".timeline li").count() >= 3
    page.click(".attempt summary:has-text('logs')")
    page.screenshot(path=SHOTS / "task-detail.png", full_page=True)
    page.close()


def test_general_user_sees_no_actions_and_is_refused(site, browser):
    base, store = site
    page = login(browser, base, "general1")
    page.wait_for_selector("#tasks tbody tr td a")
    assert page.locator("button.act").count() == 0 and page.locator("#bulk-actions").count() == 0
    # only their own tasks are listed
    own = store.db.tasks.count_documents({"submitted_by": "general1"})
    assert page.locator("#tasks_info").inner_text().count(str(own)) >= 1
    token = page.get_attribute("meta[name=csrf-token]", "content")
    refused = page.request.post(f"{base}/actions/tasks", form={"action": "cancel", "ids": "x"},
                                headers={"X-CSRFToken": token})
    assert refused.status == 403
    assert page.request.get(f"{base}/users").status == 403
    page.screenshot(path=SHOTS / "tasks-general-user.png", full_page=True)
    page.close()


def test_worker_pages_show_cpu_and_every_page_renders(site, browser):
    base, store = site
    page = login(browser, base, "admin1")
    page.goto(f"{base}/workers")
    card = page.locator("#worker-gpu-box-1")
    assert "CPU 38%" in card.inner_text() and "no NVIDIA GPU found" in card.inner_text()
    assert "running: train_model" in card.inner_text() or "running:" in card.inner_text()
    assert "GPU 0 64%" in page.inner_text("#worker-gpu-box-2")
    page.screenshot(path=SHOTS / "workers.png", full_page=True)
    page.goto(f"{base}/workers/gpu-box-1")
    assert "37.5%" in page.inner_text("#cpu-percent")
    # the chart is drawn from the time-series collection, averaged into buckets
    page.wait_for_function("Number(document.getElementById('chart').dataset.points) >= 30")
    page.screenshot(path=SHOTS / "worker-detail.png", full_page=True)

    # an admin drains a worker; the page says so and MongoDB shows it
    page.click("form.worker-actions button:has-text('Drain')")
    page.wait_for_selector(".alert-success:has-text('gpu-box-1 is now draining')")
    assert store.workers.get("gpu-box-1")["state"] == "draining"

    # an admin adds a user from the users page
    page.goto(f"{base}/users")
    page.fill("#new-name", "carol")
    page.select_option("#new-role", "business")
    page.fill("#new-password", "carols-password")
    page.click("#add-user button")
    page.wait_for_selector(".alert-success:has-text('carol added as business')")
    assert store.db.users.find_one({"_id": "carol"})["role"] == "business"
    page.screenshot(path=SHOTS / "users.png", full_page=True)

    page.goto(f"{base}/")
    page.wait_for_function("Chart.getChart('throughput-chart') !== undefined")
    assert page.inner_text("#count-queued").replace(",", "").isdigit()
    page.screenshot(path=SHOTS / "portal.png", full_page=True)
    for name in ("functions", "schedules"):
        resp = page.goto(f"{base}/{name}")
        assert resp.status == 200
        page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
    phone = login(browser, base, "super1", viewport={"width": 390, "height": 844})
    phone.wait_for_selector("#tasks tbody tr td a")
    phone.screenshot(path=SHOTS / "tasks-phone.png")
    phone.close()
    page.close()
