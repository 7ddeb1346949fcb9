"""Pages as a new user reads them, in Chromium (Playwright) against a real server and mongod:
the 算网 font, full task ids, FSM-derived row actions, a 420 px screen, readable JSON, the GPU
note, the login form, auto-refresh and the API docs page. Screenshots: test-artifacts/screenshots/."""
from __future__ import annotations

from pathlib import Path

import pytest

from fsm.states import actions_allowed
from fsm.store import Store, database
from fsm.store.spec import validate
from fsm.store.tasks import Claimant
from scheduler.config import ServerConfig
import web
from scheduler.server import Server
from tests.procs import wait_for

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
PASSWORD = "correct-horse-1"
SCHEDULED_ID = "nightly-report@2026-12-01T195247Z"
MARKUP = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
NVML = "NVMLError_LibraryNotFound: NVML Shared Library Not Found"

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def site(mongo):
    """A server over tasks in every status, one with markup in its arguments, and a GPU-less worker."""
    db = database(mongo.uri, "web_readable")
    db.client.drop_database("web_readable")
    store = Store(db)
    for role in ("super", "general"):
        store.users.add(f"{role}1", role, PASSWORD)
    tasks = store.tasks
    doc = lambda body: tasks.document(validate(body), "super1")  # noqa: E731
    tasks.insert([doc({"function": "echo", "args": [MARKUP, {"q": "a&b", "名": "算网"}], "id": SCHEDULED_ID})])
    tasks.insert([doc({"function": "noop", "id": f"t-{status}", "max_retries": 0})
                  for status in ("succeeded", "failed", "cancelled", "running", "queued")])
    box = Claimant("cpu-box-1", distinct_grace_s=-1)
    for outcome in ("succeeded", "failed", "running"):  # the claim takes the newest first: t-queued...
        claim = tasks.claim_next(box)
        if outcome != "running":
            tasks.finish_attempt(claim.task_id, claim.attempt_id, outcome, result=1, error="boom", worker="cpu-box-1")
    db.workers.insert_one({
        "_id": "cpu-box-1", "host": "cpu-box-1", "addresses": ["10.0.0.9"], "state": "online", "pid": 1,
        "last_seen": db.client.admin.command("hello")["localTime"], "concurrency": 2, "running": [],
        "cpu": {"percent": 12.0, "per_core": [12], "count": 1}, "load": [0.1, 0.1, 0.1],
        "mem": {"percent": 20.0, "used": 1e9, "total": 8e9}, "disk": {"percent": 10.0, "used": 1e9, "total": 1e10},
        "temps": {}, "gpus": [], "gpu_note": NVML, "tags": []})
    server = Server(ServerConfig(mongo_uri=mongo.uri, db_name="web_readable", run_scheduler=False, port=0),
                    store, extensions=(web.init_app,)).start()
    yield server.url, store
    server.stop()
    db.client.drop_database("web_readable")


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def login(browser, base, name="super1", viewport=None, permissions=()):
    context = browser.new_context(viewport=viewport or {"width": 1366, "height": 850})
    if permissions:
        context.grant_permissions(list(permissions), origin=base)
    page = context.new_page()
    page.goto(f"{base}/login?next=/tasks")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/tasks")
    page.wait_for_selector("#tasks tbody tr td a.task-id")
    return page


def statuses(store) -> dict[str, str]:
    return {d["_id"]: d["status"] for d in store.db.tasks.find({}, {"status": 1})}


def test_the_brand_renders_in_the_shipped_cjk_font(site, browser):
    base, _ = site
    page = browser.new_page()
    fonts = []
    page.on("response", lambda r: fonts.append((r.url, r.status)) if r.url.endswith(".woff2") else None)
    page.goto(f"{base}/login")
    page.evaluate("document.fonts.ready")
    page.wait_for_function("[...document.fonts].some(f => f.family.includes('Noto Sans SC') && f.status === 'loaded')")
    assert fonts and all(status == 200 for _, status in fonts), fonts
    assert page.evaluate("document.fonts.check('16px \"Noto Sans SC\"', '算网')")
    page.locator(".navbar-brand").screenshot(path=SHOTS / "brand-font.png")


def test_task_ids_show_in_full_with_a_copy_button(site, browser):
    base, _ = site
    page = login(browser, base, permissions=("clipboard-read", "clipboard-write"))
    link = page.locator("a.task-id", has_text=SCHEDULED_ID)
    assert link.inner_text() == SCHEDULED_ID and link.get_attribute("title") == SCHEDULED_ID
    page.locator(f"button.copy-id[data-id='{SCHEDULED_ID}']").click()
    page.wait_for_selector(f"button.copy-id[data-id='{SCHEDULED_ID}']:has-text('copied')")
    assert page.evaluate("navigator.clipboard.readText()") == SCHEDULED_ID
    page.screenshot(path=SHOTS / "tasks-full-ids.png", full_page=True)
    page.close()


def test_row_actions_are_those_the_fsm_allows(site, browser):
    base, store = site
    page = login(browser, base)
    for task_id, status in statuses(store).items():
        row = page.locator("#tasks tbody tr", has=page.locator(f"a.task-id[title='{task_id}']"))
        shown = [b.get_attribute("data-act") for b in row.locator("button.act").all()]
        toggle = "disable"  # every task here is enabled
        expected = [a for a in actions_allowed(status) if a != ("enable" if toggle == "disable" else "disable")]
        assert shown == expected, (task_id, status, shown)
    assert actions_allowed("succeeded") == [] and "requeue" not in actions_allowed("queued")
    page.close()


def test_a_420px_screen_needs_no_sideways_scroll_and_reaches_the_actions(site, browser):
    base, _ = site
    page = login(browser, base, viewport={"width": 420, "height": 800})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 420
    page.screenshot(path=SHOTS / "tasks-420px.png", full_page=True)
    # the queued task's cancel button is reachable: on the row, or in its details below it
    row = page.locator("#tasks tbody tr", has=page.locator("a.task-id[title='t-queued']"))
    button = row.locator("button[data-act=cancel]")
    if not button.is_visible():
        row.locator("td.dtr-control").click()
        button = page.locator("#tasks tbody tr.child button[data-act=cancel][data-id='t-queued']")
    box = button.bounding_box()
    assert button.is_visible() and box and 0 <= box["x"] and box["x"] + box["width"] <= 420
    page.screenshot(path=SHOTS / "tasks-420px-details.png", full_page=True)
    page.close()


def test_arguments_show_as_readable_escaped_json(site, browser):
    base, _ = site
    page = login(browser, base)
    page.goto(f"{base}/tasks/{SCHEDULED_ID}")
    text = page.inner_text("#args")
    assert MARKUP.replace('"', '\\"') in text and '"名": "算网"' in text and "\\u003c" not in text
    assert page.evaluate("window.__xss") is None  # shown, never run
    page.screenshot(path=SHOTS / "task-args.png", full_page=True)
    page.close()


def test_a_worker_without_gpu_says_so_and_keeps_the_detail_in_a_tooltip(site, browser):
    base, _ = site
    page = login(browser, base)
    page.goto(f"{base}/workers")
    card = page.locator("#worker-cpu-box-1")
    assert "no NVIDIA GPU found" in card.inner_text() and NVML not in card.inner_text()
    note = card.locator(".gpu-note")
    note.hover()
    page.wait_for_selector(f".tooltip:has-text('{NVML}')")
    page.screenshot(path=SHOTS / "workers-gpu-note.png", full_page=True)
    page.close()


def test_the_login_form_keeps_the_name_after_a_wrong_password(site, browser):
    base, _ = site
    page = browser.new_page()
    page.goto(f"{base}/login")
    page.fill("#name", "super1")
    page.fill("#password", "wrong-password")
    page.click("button[type=submit]")
    page.wait_for_selector(".alert-danger")
    assert page.input_value("#name") == "super1" and page.input_value("#password") == ""
    assert page.evaluate("document.activeElement.id") == "password"
    page.screenshot(path=SHOTS / "login-keeps-name.png")
    page.close()


def test_tables_refresh_themselves_and_pause_while_rows_are_selected(site, browser):
    base, store = site
    page = login(browser, base)
    assert page.is_checked("#auto-refresh")

    def add(task_id):
        store.tasks.insert([store.tasks.document(validate({"function": "noop", "id": task_id}), "super1")])

    add("fresh-1")
    page.wait_for_selector("a.task-id[title='fresh-1']", timeout=15_000)
    # a selected row pauses the refresh (the selection stays as it is)
    page.locator("#tasks tbody input.pick").first.check()
    add("fresh-2")
    page.wait_for_selector("#auto-refresh-note:has-text('paused')", timeout=15_000)
    page.wait_for_timeout(6_000)  # more than one refresh period: nothing reloaded
    assert page.locator("a.task-id[title='fresh-2']").count() == 0
    page.locator("#tasks tbody input.pick").first.uncheck()
    page.wait_for_selector("a.task-id[title='fresh-2']", timeout=15_000)
    # switched off, it stays off across a reload
    page.uncheck("#auto-refresh")
    page.reload()
    assert not page.is_checked("#auto-refresh")
    page.check("#auto-refresh")

    # the server-rendered pages refresh their figures too
    page.goto(f"{base}/workers")
    store.db.workers.update_one({"_id": "cpu-box-1"}, {"$set": {"cpu.percent": 77.0}})
    page.wait_for_selector("#worker-cpu-box-1:has-text('CPU 77%')", timeout=15_000)
    page.goto(f"{base}/")
    before = int(page.inner_text("#count-queued").replace(",", ""))
    add("fresh-3")
    wait_for(lambda: int(page.inner_text("#count-queued").replace(",", "")) == before + 1, 15,
             what="the portal's count to refresh")
    page.screenshot(path=SHOTS / "portal-auto-refresh.png", full_page=True)
    page.close()


def test_the_api_docs_page_renders_the_openapi_document(site, browser):
    base, _ = site
    page = login(browser, base)
    page.goto(f"{base}/")
    page.click("#api-docs-link")
    page.wait_for_url(f"{base}/api/v1/docs")
    page.wait_for_selector(".swagger-ui .info .title:has-text('Suanwang API')", timeout=20_000)
    assert page.locator(".opblock-summary-path", has_text="/tasks").count() >= 1
    page.screenshot(path=SHOTS / "api-docs.png")
    page.close()
