"""The data API over a real waitress server and a real mongod: upload, read, ranges, ownership."""
from __future__ import annotations

import hashlib
import os
import socket

import pytest
import requests

from tests.apiserver import api, start, wait_for  # noqa: F401 - the fixture

OCTET = {"Content-Type": "application/octet-stream"}


def put(api, data: bytes, role: str = "super", name: str = "blob.bin", **headers):
    return api.call("POST", f"/data?name={name}", role, data=data, headers={**OCTET, **headers})


def test_upload_read_and_range(api):
    data = os.urandom(3 * (1 << 20) + 17)
    sha = hashlib.sha256(data).hexdigest()
    resp = put(api, data, "business", **{"X-Content-SHA256": sha})
    assert resp.status_code == 201, resp.text
    meta = resp.json()
    assert {"id", "name", "size", "sha256", "owner", "created_at"} <= set(meta)
    assert meta["size"] == len(data) and meta["sha256"] == sha and meta["owner"] == "u-business"
    assert api.call("GET", f"/data/{meta['id']}", "business").json()["sha256"] == sha

    whole = api.call("GET", f"/data/{meta['id']}/content", "business")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["ETag"] == f'"{sha}"' and whole.headers["Accept-Ranges"] == "bytes"
    part = api.call("GET", f"/data/{meta['id']}/content", "business", headers={"Range": "bytes=1048570-2097160"})
    assert part.status_code == 206 and part.content == data[1048570:2097161]
    assert part.headers["Content-Range"] == f"bytes 1048570-2097160/{len(data)}"
    tail = api.call("GET", f"/data/{meta['id']}/content", "business", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == data[-5:]
    bad = api.call("GET", f"/data/{meta['id']}/content", "business", headers={"Range": f"bytes={len(data) + 9}-"})
    assert bad.status_code == 416 and bad.json()["error"]["code"] == "range_not_satisfiable"
    same = api.call("GET", f"/data/{meta['id']}/content", "business", headers={"If-None-Match": f'"{sha}"'})
    assert same.status_code == 304 and same.content == b""

    listed = api.call("GET", "/data", "business").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == meta["id"]
    assert api.call("GET", "/data?bogus=1", "business").status_code == 422


def test_bad_uploads_store_nothing(api):
    data = os.urandom(1 << 20)
    resp = put(api, data, **{"X-Content-SHA256": "0" * 64})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "checksum_mismatch"
    assert put(api, data, **{"X-Content-SHA256": "xyz"}).status_code == 422
    assert api.call("POST", "/data", "super", data=data, headers=OCTET).status_code == 422  # no name
    assert put(api, data, "general").status_code == 403
    assert api.call("POST", "/data?name=x", data=data, headers=OCTET).status_code == 401
    form = api.call("POST", "/data?name=x", "super", files={"f": data})
    assert form.status_code == 415
    assert api.store.data.files.count_documents({}) == 0 and api.store.data.chunks.count_documents({}) == 0


def test_larger_than_json_limit_and_cut_off(store, db_uri, db_name):
    # The JSON body limit (here 1 MiB) does not apply to data; the data limit (3 MiB) does.
    srv = start(store, db_uri, db_name, max_body_bytes=1 << 20, max_data_bytes=3 << 20)
    try:
        data = os.urandom(2 << 20)
        ok = put(srv, data)
        assert ok.status_code == 201, ok.text
        big = put(srv, os.urandom(4 << 20))
        assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"
        assert str(3 << 20) in big.json()["error"]["message"]
        too_big_json = srv.call("POST", "/tasks", "super", data=b"[" + b"1," * (1 << 20) + b"1]",
                                headers={"Content-Type": "application/json"})
        assert too_big_json.status_code == 413
        # A client cut off half-way: nothing becomes visible.
        host, port = srv.base.split("//")[1].split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"POST /api/v1/data?name=cut HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         f"{srv.tokens['super']}\r\nContent-Type: application/octet-stream\r\n"
                         f"Content-Length: {2 << 20}\r\n\r\n".encode() + os.urandom(1 << 20))
        assert srv.call("GET", "/data", "super").json()["total"] == 1
        assert store.data.files.count_documents({"filename": "cut"}) == 0
    finally:
        srv.server.stop()


def test_ownership_and_quota(store, db_uri, db_name):
    srv = start(store, db_uri, db_name, data_quota_bytes=3 << 20)
    try:
        mine = put(srv, os.urandom(2 << 20), "business").json()
        assert srv.call("GET", f"/data/{mine['id']}", "general").status_code == 403
        assert srv.call("GET", f"/data/{mine['id']}/content", "general").status_code == 403
        assert srv.call("GET", f"/data/{mine['id']}", "super").status_code == 200
        assert srv.call("GET", "/data/0123456789abcdef01234567", "super").status_code == 404
        assert srv.call("GET", "/data/not-an-id", "super").status_code == 404
        assert srv.call("GET", "/data", "general").json()["total"] == 0
        assert srv.call("GET", "/data?owner=u-business", "general").status_code == 403
        # Over the quota: 507 with a clear message, nothing stored.
        over = put(srv, os.urandom(2 << 20), "business")
        assert over.status_code == 507 and "quota" in over.json()["error"]["message"]
        chunked = srv.call("POST", "/data?name=c", "business", headers=OCTET,
                           data=iter([os.urandom(1 << 20)] * 2))  # no Content-Length: caught while streaming
        assert chunked.status_code == 507, chunked.text
        assert store.data.files.count_documents({}) == 1
        assert srv.call("DELETE", f"/data/{mine['id']}", "general").status_code == 403
        assert srv.call("DELETE", f"/data/{mine['id']}", "business").status_code == 200
        assert srv.call("GET", f"/data/{mine['id']}", "business").status_code == 404
    finally:
        srv.server.stop()


def test_data_arguments_checked_at_publish_and_delete_409(api):
    mine = put(api, b"hello", "business").json()
    other = put(api, b"secret", "super").json()
    body = {"function": "echo", "args": [{"__data__": mine["id"]}], "kwargs": {"deep": [{"x": {"__data__": mine["id"]}}]}}
    before = api.snapshot()
    for args, status in (([{"__data__": other["id"]}], 403), ([{"__data__": "0123456789abcdef01234567"}], 404),
                         ([{"__data__": "nope"}], 404)):
        resp = api.call("POST", "/tasks", "business", json={"function": "echo", "args": args})
        assert resp.status_code == status, resp.text
    bulk = api.call("POST", "/tasks", "business", json=[body, {"function": "echo", "args": [{"__data__": other["id"]}]}])
    assert bulk.status_code == 403 and "task [1]" in bulk.json()["error"]["message"]
    assert api.snapshot() == before
    task = api.publish(body, "business")
    assert api.store.tasks.get(task["id"])["data_refs"] == [mine["id"]]
    resp = api.call("DELETE", f"/data/{mine['id']}", "business")
    assert resp.status_code == 409 and task["id"] in resp.json()["error"]["message"]
    api.call("POST", f"/tasks/{task['id']}/cancel", "business")
    assert api.call("DELETE", f"/data/{mine['id']}", "business").status_code == 200


def test_task_result_endpoint(api):
    task = api.publish({"function": "echo", "args": [1]})
    resp = api.call("GET", f"/tasks/{task['id']}/result", "admin")
    assert resp.status_code == 409
    assert api.call("GET", "/tasks/nope/result", "admin").status_code == 404


def test_streamed_uploads_share_a_connection_and_early_refusals_are_answered(api):
    """Uploads reach the app as they arrive (scheduler.upload_stream): a refusal sent before the
    body is read still reaches the client, and the kept-alive connection serves what follows."""
    body = os.urandom(24 << 20)
    with requests.Session() as session:
        url = f"{api.url}/data?name=big"
        refused = session.post(url, data=body, headers={**OCTET, "Authorization": "Bearer wrong"}, timeout=60)
        assert refused.status_code == 401 and refused.json()["error"]["code"]
        forbidden = session.post(url, data=body, timeout=60,
                                 headers={**OCTET, "Authorization": f"Bearer {api.tokens['general']}"})
        assert forbidden.status_code == 403
        auth = {**OCTET, "Authorization": f"Bearer {api.tokens['super']}"}
        stored = session.post(url, data=body, headers={**auth, "X-Content-SHA256": hashlib.sha256(body).hexdigest()},
                              timeout=60)
        assert stored.status_code == 201, stored.text
        again = session.get(f"{api.url}/data/{stored.json()['id']}/content", headers=auth, timeout=60)
        assert again.status_code == 200 and again.content == body
        # A wrong checksum, found once the whole body went by, stores nothing.
        bad = session.post(url, data=body, headers={**auth, "X-Content-SHA256": "0" * 64}, timeout=60)
        assert bad.status_code == 422
    assert api.store.data.files.count_documents({}) == 1
    assert api.store.data.chunks.count_documents({}) == 24


def test_stalled_uploads_never_take_every_thread(store, db_uri, db_name):
    """Clients that send headers and then nothing hold at most half the threads (the rest of their
    uploads are spooled by the loop, holding none); the API keeps answering."""
    srv = start(store, db_uri, db_name, threads=4)
    host, port = srv.base.split("//")[1].split(":")
    stalled = []
    try:
        for i in range(6):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(f"POST /api/v1/data?name=s{i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         f"{srv.tokens['super']}\r\nContent-Type: application/octet-stream\r\n"
                         f"Content-Length: {1 << 20}\r\n\r\n".encode() + b"x" * 1000)
            stalled.append(sock)
        for _ in range(5):
            assert srv.call("GET", "/data", "super").status_code == 200
        body = os.urandom(3 << 20)
        assert put(srv, body).status_code == 201  # spooled: no streaming room left, still stored
    finally:
        for sock in stalled:
            sock.close()
        srv.server.stop()
    assert store.data.files.count_documents({"filename": {"$regex": "^s[0-9]"}}) == 0
