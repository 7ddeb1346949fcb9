"""The data page in a real browser (Playwright, Debian's Chromium) against a real server:
upload with a progress bar, the list with sizes, owners and using tasks, download, links on
the task page. Screenshots land in test-artifacts/screenshots/."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from fsm.store.spec import validate
from tests.apiserver import start
from tests.test_web_browser import CHROMIUM, PASSWORD, SHOTS, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


def test_upload_list_download_and_task_links(store, db_uri, db_name, browser, tmp_path):  # noqa: F811
    srv = start(store, db_uri, db_name)
    try:
        store.users.add("sue", "super", PASSWORD)
        page = browser.new_page(viewport={"width": 1366, "height": 850}, accept_downloads=True)
        page.goto(f"{srv.base}/datasets")
        page.fill("#name", "sue")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{srv.base}/datasets")
        # When sue uploads a 3 MB file through the page
        source = tmp_path / "measurements.bin"
        source.write_bytes(os.urandom(3 << 20))
        page.set_input_files("#file", str(source))
        page.click("#send")
        page.wait_for_selector("#outcome.alert-success")
        assert "uploaded measurements.bin" in page.inner_text("#outcome")
        assert page.inner_text("#bar") == "done"
        # Then it is stored, listed with its size and owner, and downloads byte for byte
        [meta] = store.data.page()[0]
        assert meta["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest() and meta["owner"] == "sue"
        task_id = store.tasks.insert([dict(store.tasks.document(validate(
            {"function": "echo", "args": [{"__data__": meta["id"]}]}), "sue"), data_refs=[meta["id"]])])[0]
        page.reload()
        row = page.locator("#objects tbody tr", has_text="measurements.bin")
        row.wait_for()
        assert "3.0 MiB" in row.inner_text() and "sue" in row.inner_text() and task_id in row.inner_text()
        page.screenshot(path=SHOTS / "data.png", full_page=True)
        with page.expect_download() as got:
            row.locator("a.download").click()
        saved = Path(got.value.path())
        assert saved.read_bytes() == source.read_bytes()
        # deleting it is refused while the task is queued, with the reason shown
        row.locator("button.remove").click()
        page.wait_for_selector("#outcome.alert-warning")
        assert "live task" in page.inner_text("#outcome")
        # the task page links its data
        page.goto(f"{srv.base}/tasks/{task_id}")
        assert page.locator(f"#data-refs a[href='/api/v1/data/{meta['id']}/content']").count() == 1
        page.close()
    finally:
        srv.server.stop()
