"""Arbitrary JSON (hypothesis) at every write endpoint of a live server: never a 5xx.

The endpoints come from the app's own URL map, so a new write route is fuzzed without editing
this file. Bodies mix field names the API knows with arbitrary ones, values of every JSON type
(huge integers, NaN, long strings, deep nesting) and raw texts nested past the depth limit.
"""
from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.apiserver import api  # noqa: F401 (a fixture)

WRITE = {"POST", "PUT", "PATCH", "DELETE"}
#: Field names of the API's bodies, so that generated bodies get past the first check sometimes.
FIELDS = ["function", "args", "kwargs", "priority", "version", "redundancy", "quorum", "timeout_s", "max_retries",
          "requires", "gpus", "tags", "is_enabled", "id", "run_after", "delay_s", "name", "role", "password",
          "groups", "trigger", "type", "seconds", "cron", "task", "timezone", "paused", "event", "channel", "url",
          "email", "repo", "ref", "entrypoint", "code", "public", "deprecated", "location", "verify", "description"]
VALUES = ["echo", "noop", "interval", "cron", "admin", "business", "webhook", "task_failed", "1.0", "builtin"]

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2 ** 70, 2 ** 70) | st.floats()
           | st.text(max_size=40) | st.sampled_from(VALUES))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), children, max_size=6),
    max_leaves=30)
#: Bodies close to valid ones (a known function, role or trigger type and a few other fields), to get past
#: the first checks into the deeper ones: ranges, references, the registry, BSON encoding.
near_valid = st.fixed_dictionaries(
    {"function": st.sampled_from(["echo", "noop", "sleep"])},
    optional={f: (st.sampled_from(VALUES) | json_values) for f in FIELDS if f != "function"}).map(json.dumps)
bodies = st.one_of(
    near_valid, near_valid,
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.lists(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5), max_size=4).map(json.dumps),
    st.integers(50, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(50, 3000).map(lambda n: '{"function": "echo", "args": ' + "[" * n + "]" * n + "}"),
    st.text(max_size=60))


def write_routes(app) -> list[tuple[str, str]]:
    """Every (method, rule) of the app that writes, under /api/v1."""
    return sorted((method, rule.rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
                  for method in rule.methods & WRITE)


def test_arbitrary_json_never_gets_a_server_error(api):
    routes = write_routes(api.server.app)
    assert ("POST", "/api/v1/tasks") in routes and ("PATCH", "/api/v1/tasks/<task_id>") in routes
    assert len(routes) >= 12, routes
    known = {"task_id": api.publish({"function": "noop"})["id"], "name": "u-general"}
    hit: set[tuple[str, str]] = set()

    @settings(max_examples=40 * len(routes), deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(route=st.sampled_from(routes), body=bodies,
           param=st.sampled_from(["known", "unknown-x", "..", "%00", "a" * 300]))
    def one_request(route, body, param):
        method, rule = route
        hit.add(route)
        path = rule.replace("/api/v1", "")
        for arg in re.findall(r"<(?:\w+:)?(\w+)>", rule):
            value = known.get(arg, "x") if param == "known" else param
            path = re.sub(rf"<(?:\w+:)?{arg}>", value, path)
        resp = api.call(method, path, "admin", data=body.encode("utf-8", "surrogatepass"),
                        headers={"Content-Type": "application/json"})
        assert resp.status_code < 500, f"{method} {path} {body[:300]!r} -> {resp.status_code} {resp.text[:500]}"
        if resp.status_code >= 400:
            err = resp.json()["error"]
            assert err["code"] and err["message"]

    one_request()
    assert hit == set(routes), set(routes) - hit
