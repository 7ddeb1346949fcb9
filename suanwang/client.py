"""A small HTTP client of the Suanwang API for the command line."""
from __future__ import annotations

import requests

from fsm.errors import SuanwangError, Unauthorized

FINAL = {"succeeded", "failed", "cancelled"}


class ServerUnreachable(SuanwangError):
    """The server did not answer, or answered that it cannot now (502/503/504): worth another try."""

    http_status = 503


class Client:
    def __init__(self, base_url: str, token: str | None, timeout: float = 30, origin: str = ""):
        if not token:
            raise Unauthorized("no API token: pass --token or set SUANWANG_TOKEN")
        self.base = base_url.rstrip("/") + "/api/v1"
        self.origin = origin  # where the URL came from, for the error message
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def _call(self, method: str, path: str, body=None):
        try:
            resp = self.session.request(method, self.base + path, json=body, timeout=self.timeout)
        except requests.ConnectionError:
            where = f" ({self.origin})" if self.origin else ""
            raise ServerUnreachable(f"cannot reach the server at {self.base}{where}: is `suanwang server` or "
                                    "`suanwang up` running?") from None
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                message = f"{err['message']} ({resp.status_code} {err['code']})"
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {resp.status_code}: {resp.text[:200]}"
            raise (ServerUnreachable if resp.status_code in (502, 503, 504) else SuanwangError)(message)
        return resp.json()

    def get(self, path: str):
        return self._call("GET", path)

    def post(self, path: str, body=None):
        return self._call("POST", path, body)

    def patch(self, path: str, body=None):
        return self._call("PATCH", path, body)

    def put(self, path: str, body=None):
        return self._call("PUT", path, body)

    def delete(self, path: str):
        return self._call("DELETE", path)

    def wait(self, task_id: str, poll_s: float = 0.1):
        """Poll until the task is final, with a progress bar on the terminal (``suanwang.progress``)."""
        from suanwang.progress import follow

        return follow(lambda tid: self.get(f"/tasks/{tid}"), task_id, poll_s)
