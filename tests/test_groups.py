"""Groups: the store's verbs on the real mongod and the /api/v1/groups routes with their refusals."""
from __future__ import annotations

import pytest

from fsm.errors import Conflict, NotFound
from scheduler import service_services
from tests.test_services import api  # noqa: F401  (the real app with four users)


def test_the_group_store(store):
    store.groups.add("lab", ["nlp", "vision", "nlp"])
    assert store.groups.get("lab")["partitions"] == ["nlp", "vision"]  # sorted, once each
    with pytest.raises(Conflict):
        store.groups.add("lab", [])
    assert [g["_id"] for g in store.groups.of(["lab", "nobody"])] == ["lab"] and store.groups.of([]) == []
    assert store.groups.set_partitions("lab", ["ocr"])["partitions"] == ["ocr"]
    store.groups.remove("lab")
    for verb in (lambda: store.groups.get("lab"), lambda: store.groups.remove("lab"),
                 lambda: store.groups.set_partitions("lab", [])):
        with pytest.raises(NotFound):
            verb()


def test_a_users_open_partitions_follow_their_groups(store):
    store.groups.add("lab", ["nlp"])
    store.users.add("ann", "business", groups=["lab", "gone"])
    ann = store.users.find("ann")
    assert service_services.open_partitions(store, ann) == frozenset({"public", "nlp"})
    store.groups.set_partitions("lab", ["vision"])
    assert service_services.open_partitions(store, ann) == frozenset({"public", "vision"})
    store.users.add("root", "admin")
    assert service_services.open_partitions(store, store.users.find("root")) is None  # admins: everything


@pytest.mark.parametrize("body, status", [
    ({"name": "ok-team", "partitions": ["nlp"]}, 201),
    ({"name": "ok-team"}, 201),
    ({"name": "bad name", "partitions": []}, 422),
    ({"name": "t", "partitions": "nlp"}, 422),
    ({"name": "t", "partitions": ["Upper"]}, 422),
    ({"name": "t", "colour": "red"}, 422),
    (["not", "an", "object"], 422),
])
def test_group_bodies_are_checked(api, body, status):  # noqa: F811
    resp = api("POST", "/groups", "admin", json=body)
    assert resp.status_code == status, resp.get_json()


def test_group_routes_answer_409_404_and_403(api):  # noqa: F811
    assert api("POST", "/groups", "admin", json={"name": "lab", "partitions": []}).status_code == 201
    assert api("POST", "/groups", "admin", json={"name": "lab", "partitions": []}).status_code == 409
    assert api("PATCH", "/groups/nope", "admin", json={"partitions": []}).status_code == 404
    assert api("PATCH", "/groups/lab", "admin", json={}).status_code == 422
    assert api("DELETE", "/groups/nope", "admin").status_code == 404
    for method, path in (("GET", "/groups"), ("GET", "/groups/lab"), ("DELETE", "/groups/lab")):
        assert api(method, path, "super").status_code == 403
