"""The Python SDK (``suanwang.Client`` and ``AsyncClient``) against a live server and worker."""
import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest

from fsm.errors import SuanwangError
from suanwang import AsyncClient, Client, TaskFailed
from suanwang.sdk import ApiError
from tests.procs import wait_for

F = "tests.flow_functions"


@pytest.fixture
def live(cluster):
    cluster.start_server()
    cluster.start_worker("w1", concurrency=2, heartbeat=0.3)
    return cluster


def server_url(cluster):
    return f"http://127.0.0.1:{cluster.port}"


def test_the_sync_client_submits_waits_maps_and_reports_failures(live, tmp_path):
    with Client(server_url(live), live.token) as client:
        task = client.submit(f"{F}:add", 2, b=3, priority=5)
        assert task.result(timeout=60) == 5 and task.status() == "succeeded"
        assert client.get(task.id)["priority"] == 5 and client.get(task.id)["kwargs"] == {"b": 3}
        # a dependency given as a handle, its result passed along
        then = client.submit(f"{F}:add", {"__result__": task.id}, 10, depends_on=[task])
        assert then.result(timeout=60) == 15
        assert list(client.map("echo", range(30))) == list(range(30))
        broken = client.submit(f"{F}:fail", "no luck", max_retries=0)
        with pytest.raises(TaskFailed) as failed:
            broken.result(timeout=60)
        assert failed.value.status == "failed" and "RuntimeError: no luck" in failed.value.error
        assert "in fail" in failed.value.remote_traceback and "remote traceback" in str(failed.value)
        with pytest.raises(ApiError) as refused:
            client.submit("echo", depends_on=["no-such-task"])
        assert refused.value.http_status == 422 and "unknown task" in str(refused.value)


def test_the_sync_client_sees_progress_and_cancels(live, tmp_path):
    client = Client(server_url(live), live.token)
    task = client.submit(f"{F}:slow_progress", str(tmp_path / "never"), 10, 0.05)
    seen = wait_for(lambda: (task.progress() or {}).get("fraction") == 1.0 and task.progress(), 60,
                    what="progress through the SDK")
    assert seen["message"] == "step 10 of 10"
    with pytest.raises(TimeoutError):
        task.result(timeout=0.5)
    assert task.cancel()["status"] == "cancelled"
    with pytest.raises(TaskFailed) as cancelled:
        task.result(timeout=10)
    assert cancelled.value.status == "cancelled"


def test_from_env_reads_variables_or_the_data_directory_of_up(live, tmp_path, monkeypatch):
    monkeypatch.delenv("SUANWANG_SERVER", raising=False)
    monkeypatch.delenv("SUANWANG_TOKEN", raising=False)
    (tmp_path / "admin.token").write_text(live.token + "\n")
    (tmp_path / "server.url").write_text(server_url(live) + "\n")
    monkeypatch.setenv("SUANWANG_DATA_DIR", str(tmp_path))
    assert Client.from_env().submit("echo", "dir").result(timeout=60) == "dir"
    monkeypatch.setenv("SUANWANG_SERVER", server_url(live))
    monkeypatch.setenv("SUANWANG_TOKEN", live.token)
    monkeypatch.setenv("SUANWANG_DATA_DIR", str(tmp_path / "empty"))
    assert Client.from_env().submit("echo", "env").result(timeout=60) == "env"


def test_the_async_client_does_the_same_as_coroutines(live, tmp_path):
    async def main():
        async with AsyncClient(server_url(live), live.token) as client:
            tasks = [await client.submit(f"{F}:add", i, i) for i in range(5)]
            assert await asyncio.gather(*(t.result(timeout=60) for t in tasks)) == [0, 2, 4, 6, 8]
            assert [r async for r in client.map("echo", ["a", "b", "c"])] == ["a", "b", "c"]
            slow = await client.submit(f"{F}:slow_progress", str(tmp_path / "never"), 10, 0.05)
            while ((await slow.progress()) or {}).get("fraction") != 1.0:
                await asyncio.sleep(0.05)
            assert (await slow.cancel())["status"] == "cancelled"
            with pytest.raises(TaskFailed):
                await slow.result(timeout=10)
            broken = await client.submit(f"{F}:fail", max_retries=0)
            with pytest.raises(TaskFailed) as failed:
                await broken.result(timeout=60)
            assert failed.value.remote_traceback
            assert await (await client.submit("echo", 1, depends_on=tasks)).status() in ("pending", "queued",
                                                                                        "running", "succeeded")
    asyncio.run(asyncio.wait_for(main(), 120))


def test_the_async_client_moves_large_data_both_ways(live, tmp_path):
    import hashlib

    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(1 << 20) * 5)

    async def main():
        async with AsyncClient(server_url(live), live.token) as client:
            meta = await client.upload(source)
            assert meta["name"] == "in.bin" and meta["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
            seen = await (await client.submit("tests.data_functions:checksum", {"__data__": meta["id"]})).result(60)
            assert seen["sha256"] == meta["sha256"]
            await client.download(meta["id"], tmp_path / "copy.bin")
            assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()
            made = await client.submit("tests.data_functions:write_file", 2)
            saved = await made.save_result(tmp_path / "out.bin", timeout=60)
            assert saved["sha256"] == (await made.info())["result_ref"]["sha256"] and saved["size"] == 2 << 20
            with pytest.raises(SuanwangError, match="404"):
                await client.download("0" * 24, tmp_path / "missing.bin")
            assert not list(tmp_path.glob("missing.bin*"))
            assert (await client.delete_data(meta["id"]))["deleted"]["id"] == meta["id"]
            with pytest.raises(ApiError, match="no data object"):
                await client.data_info(meta["id"])
    asyncio.run(asyncio.wait_for(main(), 120))


def test_a_wait_rides_through_a_server_restart(cluster, tmp_path):
    # Given a task being waited for by the sync and the async client
    server = cluster.start_server()
    cluster.start_worker("w1", concurrency=2, heartbeat=0.3)
    client = Client(server_url(cluster), cluster.token)
    sync_task, async_task = client.submit("sleep", 2), client.submit("sleep", 2.5)
    got = {}

    async def async_wait():
        async with AsyncClient(server_url(cluster), cluster.token) as aclient:
            got["async"] = await aclient.task(async_task.id).result(timeout=90)

    waiters = [threading.Thread(target=lambda: got.__setitem__("sync", sync_task.result(timeout=90))),
               threading.Thread(target=lambda: asyncio.run(async_wait()))]
    for w in waiters:
        w.start()
    # (and `suanwang submit --wait` on the command line, for a task that ends when a marker appears)
    marker = tmp_path / "go"
    cli = subprocess.Popen([sys.executable, "-m", "suanwang", "submit", f"{F}:slow_progress", str(marker), "-k",
                            "steps=2", "-k", "step_s=0.05", "--wait", "--server-url", server_url(cluster),
                            "--token", cluster.token], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cli_task_reported():  # its progress comes a heartbeat after the publish was answered
        items = client._call("GET", "/tasks", params={"function": f"{F}:slow_progress"})["items"]
        return items and client.get(items[0]["id"]).get("progress")

    wait_for(cli_task_reported, 30, what="the command line's task to run and report progress")
    # When the server is killed and comes back on its port a few seconds later
    server.kill()
    time.sleep(3)  # (the server stays away this long)
    cluster.start_server()
    marker.touch()
    for w in waiters:
        w.join(90)
    # Then every wait ends with its result, not with a connection error
    assert got == {"sync": 2, "async": 2.5}
    out, err = cli.communicate(timeout=90)
    assert cli.returncode == 0 and out.strip() == "2", err  # slow_progress returns its steps


def test_a_publish_rides_through_a_server_restart(cluster):
    # Given a server that is down when a program publishes, and back two seconds later
    server = cluster.start_server()
    cluster.start_worker("w1", concurrency=2, heartbeat=0.3)
    client = Client(server_url(cluster), cluster.token)
    server.kill()
    threading.Timer(2.0, cluster.start_server).start()
    # Then the publishes wait for it (ids chosen by the client make a retry safe) and run
    task = client.submit("echo", "once")
    many = client.submit_many([{"function": "echo", "args": [i]} for i in range(3)])
    assert task.result(timeout=60) == "once" and [h.result(timeout=60) for h in many] == [0, 1, 2]
    assert client._call("GET", "/tasks", params={"limit": 10})["total"] == 4  # each stored once


def test_a_retried_publish_sends_only_what_a_lost_answer_did_not_store():
    from suanwang.sdk import POLL_MAX_S, _Publishing

    publishing = _Publishing([{"function": "echo"}, {"function": "echo", "id": "mine"}], single=False)
    first, second = publishing.ids()
    assert second == "mine" and len(first) == 24
    # a 409 before any try was lost is a real conflict
    with pytest.raises(ApiError):
        publishing.after(ApiError(409, "conflict", "taken", {"ids": [first]}))
    # the server went away (the answer may have been lost): try again, then a 409 naming ours
    assert publishing.after(OSError("connection refused")) == POLL_MAX_S
    assert publishing.after(ApiError(409, "conflict", "taken", {"ids": [first]})) == 0.0
    assert publishing.request() == [{"function": "echo", "id": "mine"}]
    assert publishing.after(ApiError(409, "conflict", "taken", {"ids": ["mine"]})) is None  # all stored
    # a refusal of another kind, or a 409 naming someone else's task, is raised
    for refusal in (ApiError(422, "invalid", "bad"), ApiError(409, "conflict", "taken", {"ids": ["other"]})):
        again = _Publishing([{"function": "echo"}], single=True)
        again.after(OSError("reset"))
        with pytest.raises(ApiError):
            again.after(refusal)


def test_a_wait_on_a_server_that_stays_away_gives_up_with_the_cause(monkeypatch):
    import requests

    from fsm.store.embedded import free_port
    from suanwang import sdk

    monkeypatch.setattr(sdk, "RECONNECT_S", 1.0)
    began = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        Client(f"http://127.0.0.1:{free_port()}", "token").task("t1").result(timeout=60)
    assert time.monotonic() - began < 10


def test_importing_suanwang_in_a_task_loads_no_http_client():
    code = ("import sys; from suanwang import current_task; "
            "print(sorted(m for m in ('aiohttp', 'requests', 'flask', 'pymongo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_readme_sdk_example_runs(live, monkeypatch, capsys):
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("The SDK, from any Python program"):]
    code = section[section.index("```python\n") + 10:section.index("```\n", section.index("```python\n") + 10)]
    monkeypatch.setenv("SUANWANG_SERVER", server_url(live))
    monkeypatch.setenv("SUANWANG_TOKEN", live.token)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == ["[['the', 3], ['fox', 1]]", "[0, 1, 2, 3, 4]",
                                                    "RuntimeError: boom"]


def test_the_sync_client_moves_large_data_both_ways(live, tmp_path):
    import hashlib

    source = tmp_path / "train.bin"
    source.write_bytes(os.urandom(3 << 20) * 2)  # 6 MiB
    with Client(server_url(live), live.token) as client:
        # a file streamed up, given to a task as a local path, and streamed back
        meta = client.upload(source, name="train.bin")
        assert meta["size"] == 6 << 20 and meta["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        seen = client.submit("tests.data_functions:checksum", {"__data__": meta["id"]}).result(timeout=60)
        assert seen["is_path"] and seen["sha256"] == meta["sha256"]
        back = client.download(meta["id"], tmp_path / "copy.bin")
        assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes() and back["sha256"] == meta["sha256"]
        assert client.data_info(meta["id"])["name"] == "train.bin"
        # a large result (a file the task wrote) saved to a file, checked against its sha256
        made = client.submit("tests.data_functions:write_file", 3)
        saved = made.save_result(tmp_path / "out.bin", timeout=60)
        assert saved["size"] == (tmp_path / "out.bin").stat().st_size == made.info()["result_ref"]["size"]
        assert saved["sha256"] == made.info()["result_ref"]["sha256"]
        # a failed task's result cannot be saved: TaskFailed, and no file
        with pytest.raises(TaskFailed):
            client.submit(f"{F}:fail", "no file", max_retries=0).save_result(tmp_path / "none.bin", timeout=60)
        assert not (tmp_path / "none.bin").exists()
        # unknown ids are clear errors
        with pytest.raises(SuanwangError, match="404"):
            client.download("0" * 24, tmp_path / "missing.bin")
        assert not list(tmp_path.glob("missing.bin*"))  # not even a partial file
        assert client.delete_data(meta["id"])["deleted"]["id"] == meta["id"]
        with pytest.raises(ApiError, match="no data object"):
            client.data_info(meta["id"])
