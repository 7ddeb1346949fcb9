"""The services page in a real browser: Deploy, Roll back and Undeploy buttons, and partitions.

Playwright drives Debian's Chromium against a real server (``scheduler.server.Server``) on the real mongod.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import web
from fsm.store import Store
from scheduler import service_services
from scheduler.config import ServerConfig
from scheduler.server import Server

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-1"
sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def site(db, db_name, mongo):
    store = Store(db)
    store.groups.add("nlp-team", ["nlp"])
    store.users.add("sue", "super", PASSWORD, groups=["nlp-team"])
    store.users.add("bob", "business", PASSWORD)
    sue = store.users.find("sue")
    store.db.functions.insert_one({"_id": "tagger@1.0", "code": "tagger", "version": "1.0", "public": True,
                                   "deprecated": False, "partition": "nlp", "create_time": store.now()})
    store.db.functions.insert_one({"_id": "tagger@2.0", "code": "tagger", "version": "2.0", "public": True,
                                   "deprecated": False, "partition": "nlp", "create_time": store.now()})
    service_services.create_service(store, {"name": "say", "function": "echo", "version": "builtin"}, sue)
    service_services.create_service(store, {"name": "tag", "function": "tagger", "version": "1.0",
                                            "partition": "nlp"}, sue)
    http = Server(ServerConfig(mongo_uri=mongo.uri, db_name=db_name, run_scheduler=False, port=0), store,
                  extensions=(web.init_app,)).start()
    yield http.url, store
    http.stop()


def _login(browser, base, name):
    page = browser.new_page()
    page.goto(f"{base}/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def test_super_user_deploys_rolls_back_and_undeploys_with_one_click(site):
    base, store = site
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = _login(browser, base, "sue")
        page.goto(f"{base}/services")
        row = page.locator("tr[data-service=tag]")
        row.locator("select[name=version]").select_option("2.0")
        row.locator("button[name=deploy]").click()
        page.wait_for_load_state()
        row = page.locator("tr[data-service=tag]")
        assert row.locator(".deployed").inner_text() == "2.0" and row.locator(".previous").inner_text() == "1.0"
        row.locator("button[name=rollback]").click()
        page.wait_for_load_state()
        assert page.locator("tr[data-service=tag] .deployed").inner_text() == "1.0"
        page.locator("tr[data-service=tag] button[name=undeploy]").click()
        page.wait_for_load_state()
        assert page.locator("tr[data-service=tag] .state").inner_text() == "undeployed"
        assert store.services.get("tag")["state"] == "undeployed"
        assert [a["action"] for a in store.db.audit.find({"target": "tag"}).sort("at", 1)] == [
            "service.create", "service.deploy", "service.rollback", "service.undeploy"]

        # A business user without the "nlp" partition sees neither the service nor the function's page.
        page = _login(browser, base, "bob")
        page.goto(f"{base}/services")
        assert page.locator("tr[data-service=say]").count() == 1 and page.locator("tr[data-service=tag]").count() == 0
        assert page.locator("button[name=deploy]").count() == 0
        assert page.goto(f"{base}/functions/tagger/1.0").status == 404
        page.goto(f"{base}/functions")
        assert "tagger" not in page.content()
        browser.close()
