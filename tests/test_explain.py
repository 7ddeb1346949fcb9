"""Why is my task not running: GET /api/v1/tasks/<id>/explain, `suanwang why`, publish warnings."""
import os
import subprocess
import sys

from fsm import placement
from tests.apiserver import ADMIN_TOKEN, api  # noqa: F401 - the fixture


def whoami(host, *, gpus=0, mem_gb=16.0, tags=(), concurrency=2):
    return {"host": host, "pid": 1, "gpu_count": gpus, "mem_gb": mem_gb, "tags": list(tags),
            "concurrency": concurrency, "running": []}


def test_obstacles_name_each_reason():
    task = {"_id": "t", "requires": {"gpus": 1, "mem_gb": 32, "tags": ["cuda"]}, "workers": ["w2"]}
    why = placement.obstacles(task, {"_id": "w1", "state": "draining", "gpu_count": 0, "mem_gb": 8, "tags": []})
    assert [w.split(":")[0] for w in why] == ["draining", "GPUs", "memory", "tags"]
    assert "distinct workers" in placement.obstacles(task, {"_id": "w2", "state": "online", "gpu_count": 1,
                                                             "mem_gb": 64, "tags": ["cuda"]})[0]
    assert placement.obstacles(task, {"_id": "w3", "state": "online", "gpu_count": 2, "mem_gb": 64,
                                      "tags": ["cuda", "x"]}) == []


def test_explain_lists_who_could_run_it_and_what_is_ahead(api):
    store = api.store
    store.workers.register("cpu-1", whoami("box-a"), stale_after_s=15)
    store.workers.register("gpu-1", whoami("box-b", gpus=1, tags=("cuda",)), stale_after_s=15)
    store.workers.register("gpu-2", whoami("box-c", gpus=1, tags=("cuda",)), stale_after_s=15)
    store.workers.set_state("gpu-2", "draining")
    ahead = [api.publish({"function": "noop", "priority": 5, "requires": {"gpus": 1}})["id"] for _ in range(3)]
    api.publish({"function": "noop", "priority": 9})  # the plain lane, which gpu-1 serves too: ahead
    mine = api.publish({"function": "noop", "priority": 5, "requires": {"gpus": 1, "tags": ["cuda"]}})
    resp = api.call("GET", f"/tasks/{mine['id']}/explain", "admin")
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    rows = {w["name"]: w for w in answer["workers"]}
    assert rows["gpu-1"]["can_run"] and rows["gpu-1"]["why_not"] == []
    assert not rows["cpu-1"]["can_run"] and any(w.startswith("GPUs") for w in rows["cpu-1"]["why_not"])
    assert any(w.startswith("tags") for w in rows["cpu-1"]["why_not"])
    assert rows["gpu-2"]["why_not"][0].startswith("draining")
    assert answer["eligible_workers"] == 1
    # gpu-1 serves the plain lane and the gpus=1 lane too: all four tasks published earlier come first
    assert answer["ahead"] == len(ahead) + 1
    assert "1 online worker(s) can run it; 4 claimable task(s) are ahead" in answer["summary"]

    # When the only capable worker drains, the task says nobody can run it
    store.workers.set_state("gpu-1", "draining")
    answer = api.call("GET", f"/tasks/{mine['id']}/explain", "admin").json()
    assert answer["eligible_workers"] == 0 and "none of the 3 online worker(s) can run it" in answer["summary"]


def test_explain_follows_task_visibility_and_404(api):
    task = api.publish({"function": "noop"}, role="business")
    assert api.call("GET", f"/tasks/{task['id']}/explain", "general").status_code == 403
    assert api.call("GET", f"/tasks/{task['id']}/explain", "business").status_code == 200
    resp = api.call("GET", "/tasks/nope/explain", "admin")
    assert resp.status_code == 404 and resp.json()["error"]["code"]
    assert api.call("GET", f"/tasks/{task['id']}/explain").status_code == 401


def test_publish_warns_when_redundancy_cannot_be_honoured(api):
    api.store.workers.register("w1", whoami("box-a"), stale_after_s=15)
    api.store.workers.register("w2", whoami("box-a"), stale_after_s=15)
    two = api.publish({"function": "noop", "redundancy": 2})
    assert "warnings" not in two  # two workers: fine
    hosts = api.publish({"function": "noop", "redundancy": 2, "distinct_hosts": True})
    assert "only 1 eligible machine(s)" in hosts["warnings"][0]
    assert api.call("GET", f"/tasks/{hosts['id']}", "admin").json()["warnings"] == hosts["warnings"]
    bulk = api.call("POST", "/tasks", "admin", json=[{"function": "noop", "redundancy": 3}, {"function": "noop"}])
    assert bulk.status_code == 201 and "only 2 eligible worker(s)" in bulk.json()["warnings"][0]
    assert "warnings" not in api.publish({"function": "noop"})


def test_suanwang_why_prints_the_analysis(api):
    api.store.workers.register("cpu-1", whoami("box-a"), stale_after_s=15)
    task = api.publish({"function": "noop", "requires": {"gpus": 2}})
    out = subprocess.run([sys.executable, "-m", "suanwang", "why", task["id"], "--server-url", api.base,
                          "--token", ADMIN_TOKEN], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert "none of the 1 online worker(s) can run it" in out.stdout
    assert "GPUs: the task needs 2, the worker has 0" in out.stdout


def test_the_task_page_says_why_it_waits(api):
    import re

    import requests

    api.store.workers.register("cpu-1", whoami("box-a"), stale_after_s=15)
    task = api.publish({"function": "noop", "requires": {"gpus": 1}})
    api.store.users.add("sue", "super", "a-good-password")
    session = requests.Session()
    login = session.get(f"{api.base}/login", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
    session.post(f"{api.base}/login", data={"name": "sue", "password": "a-good-password", "csrf_token": token},
                 timeout=10)
    html = session.get(f"{api.base}/tasks/{task['id']}", timeout=10).text
    assert 'id="waiting"' in html and "none of the 1 online worker(s) can run it" in html
    assert "GPUs: the task needs 1, the worker has 0" in html
