"""The task page of a workflow in a real browser: progress, links to related tasks, the graph,
and the tasks table filtered by parent (Playwright driving Debian's Chromium, a real server)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fsm.store import Claimant, Store
from fsm.store.spec import validate
from scheduler.config import ServerConfig
import web
from scheduler.server import Server

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CYTOSCAPE = Path(__file__).resolve().parent.parent / "web" / "static" / "vendor" / "cytoscape.min.js"
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
PASSWORD = "correct-horse-1"

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not CYTOSCAPE.exists():
    pytest.skip("the npm assets lack cytoscape (scripts/build_web_assets.sh)", allow_module_level=True)


@pytest.fixture
def site(store, db_uri, db_name):
    """A parent that fanned out three children and a gather that depends on them; one child runs."""
    store.users.add("super1", "super", PASSWORD)
    tasks = store.tasks
    parent = tasks.insert([tasks.document(validate({"id": "parent-1", "function": "fan_out"}), "super1")])[0]
    kids = tasks.insert([tasks.document(validate({"id": f"kid-{i}", "function": "work", "priority": 3 - i}),
                                        "super1", parent) for i in range(3)])
    tasks.insert([tasks.document(validate({"id": "gather-1", "function": "total", "depends_on": kids}), "super1",
                                 parent)])
    claim = tasks.claim_next(Claimant("w1"))
    assert claim.task_id == "kid-0"
    store.live.report("kid-0", claim.attempt_id, "w1", progress={"fraction": 0.42, "message": "epoch 4 of 10"},
                      logs="INFO epoch 4\n")
    server = Server(ServerConfig(mongo_uri=db_uri, db_name=db_name, run_scheduler=False, port=0), store,
                    extensions=(web.init_app,)).start()
    yield server.url
    server.stop()


@pytest.fixture
def page(site):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{site}/login")
        page.fill("#name", "super1")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{site}/")
        yield page
        browser.close()


def test_the_task_page_shows_progress_links_and_the_workflow_graph(site, page):
    page.goto(f"{site}/tasks/kid-0")
    assert page.locator("#progress .progress-bar").inner_text() == "42%"
    assert "epoch 4 of 10" in page.locator("#progress").inner_text()
    assert page.locator("#parent a").get_attribute("href").endswith("/tasks/parent-1")
    assert page.locator("#dependents a").get_attribute("href").endswith("/tasks/gather-1")
    page.wait_for_function("window.workflowGraph && window.workflowGraph.nodes().length === 5")
    assert page.evaluate("window.workflowGraph.edges().length") == 3 + 4  # depends_on edges + parent edges
    page.screenshot(path=str(SHOTS / "task-workflow.png"), full_page=True)
    # The gather's page links its three dependencies and its parent; the parent's, its children
    page.goto(f"{site}/tasks/gather-1")
    assert page.locator("#dependencies a").count() == 3
    assert "waiting_for_dependencies" in page.content()
    page.goto(f"{site}/tasks/parent-1")
    assert page.locator("#children a.task-link").count() == 4
    # The table filtered by parent lists only the children
    page.click("#children a:has-text('all in the table')")
    page.wait_for_selector("#tasks tbody tr a")
    assert page.locator("#f-parent").input_value() == "parent-1"
    page.wait_for_function("document.querySelectorAll('#tasks tbody tr').length === 4")
