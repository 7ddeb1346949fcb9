"""Credits in a real browser: the admin tops a user up on the users page and sees the balance.

Reuses the accounts pages' site (a real server on the real mongod) and login from
``tests/test_accounts_browser.py``; Playwright drives Debian's Chromium.
"""
from __future__ import annotations

import pytest

from tests.test_accounts_browser import CHROMIUM, SHOTS, _login, site, sync_api  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


def test_an_admin_tops_up_a_user_on_the_users_page(site):  # noqa: F811
    base, store = site
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        # Given the admin on the users page, where sue has no credits yet,
        _, page = _login(browser, base, "ada")
        page.click("nav >> text=Users")
        page.wait_for_url(f"{base}/users")
        row = page.locator("#user-sue")
        assert row.locator(".balance").inner_text() == "0"
        # when they add 25 credits with a note,
        row.locator("input[name=amount]").fill("25")
        row.locator("input[name=note]").fill("welcome credits")
        row.locator("button", has_text="Top up").click()
        page.wait_for_load_state()
        # then the page says so, shows the new balance, and the ledger and audit trail have it
        assert "sue: +25 credits, balance 25" in page.locator(".alert").first.inner_text()
        assert page.locator("#user-sue .balance").inner_text() == "25"
        page.screenshot(path=SHOTS / "users-credits.png", full_page=True)
        entry = store.db.ledger.find_one({"account": "user:sue"})
        assert (entry["amount"], entry["by"], entry["note"]) == (25, "ada", "welcome credits")
        assert store.db.audit.count_documents({"action": "credits.topup", "target": "user:sue"}) == 1
        # a correction below zero is refused with a clear message and changes nothing
        page.locator("#user-sue input[name=amount]").fill("-30")
        page.locator("#user-sue button", has_text="Top up").click()
        page.wait_for_load_state()
        assert "would take account user:sue below zero" in page.locator(".alert").first.inner_text()
        assert page.locator("#user-sue .balance").inner_text() == "25"
        # a super-user cannot reach the page or the action
        context, other = _login(browser, base, "sue")
        assert other.locator("nav >> text=Users").count() == 0
        denied = context.request.post(f"{base}/actions/users/sue/credits", form={"amount": "5"})
        assert denied.status in (400, 403)
        assert store.ledger.account("user:sue")["balance"] == 25
        browser.close()
