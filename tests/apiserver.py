"""A real Suanwang server (waitress in a background thread) over the test's database, and
helpers to call it with ``requests`` and to compare the database before and after."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import requests

import web
from fsm.store import Store
from scheduler.config import ServerConfig
from scheduler.server import Server
from tests.procs import wait_for  # noqa: F401 - the tests import it from here too

ADMIN_TOKEN = "admin-token-for-tests"
ROLES = ("super", "business", "general")
#: Collections a bad request must leave exactly as they were.
WATCHED = ("tasks", "users", "functions", "workers", "locks", "settings")


@dataclass
class ApiServer:
    """A running server: ``url`` is the API base (``.../api/v1``); ``tokens`` by role."""

    server: Server
    store: Store
    tokens: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.server.url

    @property
    def url(self) -> str:
        return f"{self.server.url}/api/v1"

    def call(self, method: str, path: str, role: str | None = None, *, token: str | None = None, **kwargs):
        """``requests.request`` against the API; ``role`` picks that role's token."""
        headers = dict(kwargs.pop("headers", {}))
        token = token or (self.tokens[role] if role else None)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def publish(self, body, role: str = "admin") -> dict:
        resp = self.call("POST", "/tasks", role, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def snapshot(self) -> dict:
        """Every watched document, to compare before and after a request."""
        return {name: sorted(map(repr, self.store.db[name].find({}))) for name in WATCHED}


def start(store: Store, db_uri: str, db_name: str, **overrides) -> ApiServer:
    """Start a server on a free port with an admin token and one user per role."""
    settings = dict(mongo_uri=db_uri, db_name=db_name, port=0, threads=4, admin_token=ADMIN_TOKEN,
                    run_scheduler=False)
    settings.update(overrides)
    server = Server(ServerConfig(**settings), store, extensions=(web.init_app,)).start()
    tokens = {"admin": ADMIN_TOKEN, **{role: store.users.add(f"u-{role}", role) for role in ROLES}}
    return ApiServer(server, store, tokens)


@pytest.fixture
def api(store, db_uri, db_name):
    """A running server over the test's database (import this fixture into a test module)."""
    running = start(store, db_uri, db_name)
    yield running
    running.server.stop()
