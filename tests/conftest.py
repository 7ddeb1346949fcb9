"""Shared fixtures: one real mongod (single-node replica set) for the whole session,
a fresh database per test, and helpers to run real ``suanwang`` processes."""
from __future__ import annotations

import os
import uuid

import pytest

from fsm.store import Store, database
from fsm.store.embedded import EmbeddedMongo


@pytest.fixture(scope="session")
def mongo(tmp_path_factory):
    """A real mongod for the session; yields the EmbeddedMongo (``.uri``)."""
    server = EmbeddedMongo(tmp_path_factory.mktemp("mongod"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mongo_uri(mongo) -> str:
    return mongo.uri


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db(mongo, db_name):
    """A fresh database, dropped after the test."""
    handle = database(mongo.uri, db_name)
    yield handle
    handle.client.drop_database(db_name)
    handle.client.close()


@pytest.fixture
def store(db) -> Store:
    return Store(db)


@pytest.fixture
def db_uri(mongo, db_name) -> str:
    """The URI of the test's own database, for child processes (``--mongo``)."""
    base, _, query = mongo.uri.partition("?")
    return f"{base.rstrip('/')}/{db_name}?{query}"


@pytest.fixture
def cluster(db_uri, tmp_path):
    """Real `suanwang server` / `suanwang worker` processes on the test's database, killed afterwards."""
    from tests.procs import Cluster

    c = Cluster(db_uri, tmp_path)
    yield c
    c.close()


def pytest_configure(config):
    os.environ.setdefault("PYTHONHASHSEED", "0")
