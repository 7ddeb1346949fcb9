"""Accounts in a real browser: the admins' Audit page, and logout ending a copied session.

Playwright drives Debian's Chromium against a real server (``scheduler.server.Server``) on the real mongod.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import web
from fsm.store import Store
from scheduler import service_accounts
from scheduler.config import ServerConfig
from scheduler.server import Server

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-1"
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def site(db, db_name, mongo):
    store = Store(db)
    store.users.add("ada", "admin", PASSWORD)
    store.users.add("sue", "super", PASSWORD)
    ada = store.users.find("ada")
    store.groups.add("vision", ["vision"])
    service_accounts.patch_user(store, "sue", {"groups": ["vision"]}, ada)
    service_accounts.create_token(store, "sue", {"label": "ci", "expires_in_s": 3600}, ada)
    http = Server(ServerConfig(mongo_uri=mongo.uri, db_name=db_name, run_scheduler=False, port=0), store,
                  extensions=(web.init_app,)).start()
    yield http.url, store
    http.stop()


def _login(browser, base, name):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    return context, page


def test_the_audit_page_and_logout_ending_a_copied_session(site):
    base, store = site
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        # The admin finds Audit in the navigation; it lists the changes, newest first, and filters by a click
        context, page = _login(browser, base, "ada")
        page.click("nav >> text=Audit")
        page.wait_for_url(f"{base}/audit")
        rows = page.locator("#audit tbody tr")
        assert rows.count() == 2 and "token.create" in rows.nth(0).inner_text()
        assert "user.groups" in rows.nth(1).inner_text() and '"vision"' in rows.nth(1).inner_text()
        page.screenshot(path=SHOTS / "audit.png", full_page=True)
        page.click("#audit tbody tr >> nth=1 >> text=user.groups")
        assert page.locator("#audit tbody tr").count() == 1 and "action=user.groups" in page.url
        # A second browser holding a copy of the admin's cookie is logged in as the admin ...
        thief = browser.new_context()
        thief.add_cookies(context.cookies())
        stolen = thief.new_page()
        stolen.goto(f"{base}/audit")
        assert stolen.url == f"{base}/audit" and stolen.locator("#whoami").inner_text().startswith("ada")
        # ... until the admin logs out: then the copy lands on the login page
        page.click("text=Log out")
        page.wait_for_url(lambda url: "/login" in url)
        stolen.goto(f"{base}/audit")
        assert "/login" in stolen.url
        # A super-user sees no Audit link, and the page refuses them
        _, other = _login(browser, base, "sue")
        assert other.locator("nav >> text=Audit").count() == 0
        assert other.goto(f"{base}/audit").status == 403
        browser.close()
