"""The Python SDK: publish tasks and get their results from a program.

    from suanwang import Client

    client = Client.from_env()            # or Client("http://host:8080", token)
    task = client.submit("echo", {"x": 1}, priority=5)
    print(task.result(timeout=60))        # {'x': 1}, or raises TaskFailed
    print(list(client.map("echo", range(10))))
    meta = client.upload("train.csv")     # streamed into GridFS; tasks get it as a local path
    task = client.submit("mymod:fit", {"__data__": meta["id"]})
    task.save_result("model.bin")         # a large result, streamed to a file and checked

``AsyncClient`` offers the same as coroutines, on aiohttp. Keywords of ``submit`` that name a
task field (``priority``, ``redundancy``, ``requires``, ``depends_on``, ``timeout_s``, ``id``, ...)
are task options; every other keyword is passed to the function (see ``fsm.bodies``).
``depends_on`` takes ids or handles.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Iterator

from fsm.bodies import task_body
from fsm.errors import SuanwangError

DEFAULT_SERVER = "http://127.0.0.1:8080"
FINAL = {"succeeded", "failed", "cancelled"}
#: Tasks per bulk publish of ``map``.
MAP_CHUNK = 1000
POLL_START_S, POLL_MAX_S = 0.05, 1.0
#: How long a wait for a task rides through a server that does not answer (a restart) before it raises.
RECONNECT_S = 120.0


class ApiError(SuanwangError):
    """The server refused a request; ``code``, ``http_status`` and the error's other fields
    (``details``, e.g. the ``ids`` a 409 names) are the server's."""

    def __init__(self, http_status: int, code: str, message: str, details: dict | None = None):
        super().__init__(f"{message} ({http_status} {code})")
        self.http_status, self.code = http_status, code
        self.details = details or {}


class TaskFailed(Exception):
    """A task ended without a result: ``status`` (failed | cancelled), ``reason``, the remote
    ``error`` and ``remote_traceback`` (of its last failed attempt), and the whole ``task``."""

    def __init__(self, task: dict):
        self.task = task
        self.task_id, self.status, self.reason = task["id"], task["status"], task.get("reason")
        self.error = task.get("error")
        failed = [a for a in task.get("attempts") or [] if a.get("traceback")]
        self.remote_traceback = failed[-1]["traceback"] if failed else None
        super().__init__(f"task {self.task_id} {self.status}" + (f" ({self.reason})" if self.reason else "")
                         + (f": {self.error}" if self.error else ""))

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n\nremote traceback:\n{self.remote_traceback}" if self.remote_traceback else text


def settings_from_env(data_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """``(server_url, token)`` from ``SUANWANG_SERVER`` / ``SUANWANG_TOKEN``, else from the data
    directory of a running ``suanwang up`` (``SUANWANG_DATA_DIR``, default ``~/.suanwang``)."""
    root = Path(data_dir or os.environ.get("SUANWANG_DATA_DIR") or Path.home() / ".suanwang").expanduser()
    server = os.environ.get("SUANWANG_SERVER") or _read(root / "server.url") or DEFAULT_SERVER
    token = os.environ.get("SUANWANG_TOKEN") or _read(root / "admin.token")
    if not token:
        raise SuanwangError(f"no API token: set SUANWANG_TOKEN, or run `suanwang up` (it writes {root}/admin.token)")
    return server, token


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _body(function: str, args: Iterable[Any], options: dict) -> dict:
    if "depends_on" in options and options["depends_on"] is not None:
        options["depends_on"] = [getattr(d, "id", d) for d in options["depends_on"]]
    return task_body(function, args, options)


def _outcome(task: dict, fetch_large) -> Any:
    if task["status"] != "succeeded":
        raise TaskFailed(task)
    if task.get("result") is None and task.get("result_ref"):
        return fetch_large(task["id"])
    return task.get("result")


def _error(status: int, payload: Any, text: str) -> ApiError:
    try:
        err = payload["error"]
        return ApiError(status, err["code"], err["message"],
                        {k: v for k, v in err.items() if k not in ("code", "message")})
    except (TypeError, KeyError):
        return ApiError(status, "http", text[:300])


def _unreachable(exc: Exception) -> bool:
    """The server could not answer for now (restarting, its database failing over): worth another try.

    Any error with an ``http_status`` of 502, 503 or 504 (the SDK's ``ApiError``, the command
    line's ``ServerUnreachable``), or a connection error of requests or aiohttp."""
    if getattr(exc, "http_status", None) in (502, 503, 504):
        return True
    if isinstance(exc, (OSError, asyncio.TimeoutError)):  # requests' connection errors are OSErrors
        return True
    aiohttp = sys.modules.get("aiohttp")  # (loaded by AsyncClient only)
    return aiohttp is not None and isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError))


def attempt(call, *args) -> Any:
    """``call(*args)``'s answer, or the exception it raised (judged by ``Outage`` and its users)."""
    try:
        return call(*args)
    except Exception as exc:  # noqa: BLE001 - returned, and re-raised unless the server is only away
        return exc


async def _attempt_async(call, *args) -> Any:
    try:
        return await call(*args)
    except Exception as exc:  # noqa: BLE001 - as in attempt
        return exc


class Outage:
    """How long the server has gone unanswered: an error is endured while the server is only
    away, for up to ``RECONNECT_S`` in a row; any other error, or a longer silence, is raised."""

    def __init__(self):
        self.since: float | None = None

    def endure(self, exc: Exception) -> None:
        now = time.monotonic()
        self.since = self.since or now
        if not _unreachable(exc) or now - self.since > RECONNECT_S:
            raise exc

    def over(self) -> None:
        self.since = None


class _Waiting:
    """One wait for a task to end: its deadline, its poll backoff and the server's outages.

    ``final(answer)`` takes each look's answer (the task, or the error the look raised) and
    returns the task once it is final, else None; ``next_sleep()`` is the pause before the next look.
    """

    def __init__(self, task_id: str, timeout: float | None):
        self.task_id, self.timeout = task_id, timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.poll = POLL_START_S
        self.outage = Outage()
        self.status: str | None = None

    def final(self, answer: dict | Exception) -> dict | None:
        if isinstance(answer, Exception):
            self.outage.endure(answer)
            self.status = None
            return None
        self.outage.over()
        self.status = answer["status"]
        return answer if self.status in FINAL else None

    def next_sleep(self) -> float:
        """The pause before the next look; ``TimeoutError`` when the deadline comes first."""
        if self.deadline is not None and time.monotonic() + self.poll > self.deadline:
            raise TimeoutError(f"task {self.task_id} is still {self.status or 'unknown (the server is not answering)'}"
                               f" after {self.timeout} s")
        poll, self.poll = self.poll, min(self.poll * 1.5, POLL_MAX_S)
        return poll


class _Publishing:
    """One publish, retried while the server is away (up to ``RECONNECT_S``).

    Each body without an ``id`` gets one chosen here, so a retry is safe: a task stored by a try
    whose answer was lost comes back as a 409 naming its id, and only the others are sent again.
    ``after(answer)`` takes each try's answer (or error): None when the publish is done, else
    the pause before the next try.
    """

    def __init__(self, bodies: list[dict], single: bool):
        self.bodies = [body if body.get("id") else {**body, "id": secrets.token_hex(12)} for body in bodies]
        self.pending, self.single = self.bodies, single
        self.retried = False
        self.outage = Outage()
        self.answer: Any = None  # the server's answer to the try that stored them (None: found stored)

    def request(self) -> dict | list[dict]:
        return self.pending[0] if self.single else self.pending

    def ids(self) -> list[str]:
        return [body["id"] for body in self.bodies]

    def after(self, answer: Any) -> float | None:
        if not isinstance(answer, Exception):
            self.answer = answer
            return None
        if getattr(answer, "http_status", None) == 409 and self.retried:
            taken = set(getattr(answer, "details", {}).get("ids") or ())
            if not taken & {body["id"] for body in self.pending}:
                raise answer
            self.pending = [body for body in self.pending if body["id"] not in taken]
            self.single = self.single and len(self.pending) == 1
            return None if not self.pending else 0.0
        self.outage.endure(answer)
        self.retried = True
        return POLL_MAX_S


def publish_retrying(post, bodies: list[dict], single: bool = False) -> _Publishing:
    """Publish through ``post(body)`` (``POST /tasks``), riding out a server restart (``_Publishing``)."""
    publishing = _Publishing(bodies, single)
    while (pause := publishing.after(attempt(post, publishing.request()))) is not None:
        time.sleep(pause)
    return publishing


# ----------------------------------------------------------------- synchronous
class TaskHandle:
    """One published task."""

    def __init__(self, client: "Client", task_id: str):
        self.client, self.id = client, task_id

    def __repr__(self) -> str:
        return f"TaskHandle({self.id!r})"

    def info(self) -> dict:
        """The whole task as ``GET /api/v1/tasks/<id>`` shows it."""
        return self.client.get(self.id)

    def status(self) -> str:
        return self.info()["status"]

    def progress(self) -> dict | None:
        """``{"fraction", "message", "at"}`` as last reported by the running task, or None."""
        return self.info().get("progress")

    def cancel(self) -> dict:
        return self.client._call("POST", f"/tasks/{self.id}/cancel")

    def wait(self, timeout: float | None = None) -> dict:
        """Wait for the end, whatever it is; returns the task. ``TimeoutError`` after ``timeout`` seconds."""
        waiting = _Waiting(self.id, timeout)
        while (task := waiting.final(attempt(self.info))) is None:
            time.sleep(waiting.next_sleep())
        return task

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the end: the result, or ``TaskFailed``; ``TimeoutError`` after ``timeout`` seconds.

        A large result comes back whole (bytes of a returned file, or the JSON value): for one
        that should not be held in memory, use ``save_result``."""
        return _outcome(self.wait(timeout), self.client._large_result)

    def save_result(self, path: str | os.PathLike, timeout: float | None = None) -> dict:
        """Wait for the end and stream the result (a file the task returned, or its JSON) into
        ``path``, checked against its sha256; returns ``{"path", "size", "sha256"}``.
        ``TaskFailed`` when the task did not succeed; nothing is left at ``path`` then."""
        from suanwang import transfer  # (requests: loaded only by programs that call the API)

        task = self.wait(timeout)
        if task["status"] != "succeeded":
            raise TaskFailed(task)
        ref = task.get("result_ref") or {}
        return transfer.download(self.client, f"/tasks/{self.id}/result", Path(path), sha256=ref.get("sha256"))


class Client:
    """A client of one Suanwang server (``requests``)."""

    def __init__(self, server_url: str, token: str, timeout: float = 30.0):
        import requests

        self.base = server_url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike | None = None, **kwargs) -> "Client":
        return cls(*settings_from_env(data_dir), **kwargs)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, body: Any = None, params: dict | None = None) -> Any:
        resp = self.session.request(method, self.base + path, json=body, params=params, timeout=self.timeout)
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if resp.status_code >= 400:
            raise _error(resp.status_code, payload, resp.text)
        return payload

    def _large_result(self, task_id: str) -> Any:
        resp = self.session.get(f"{self.base}/tasks/{task_id}/result", timeout=self.timeout)
        if resp.status_code >= 400:
            raise _error(resp.status_code, None, resp.text)
        return resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") else resp.content

    def get(self, task_id: str) -> dict:
        return self._call("GET", f"/tasks/{task_id}")

    def task(self, task_id: str) -> TaskHandle:
        """A handle on a task published before."""
        return TaskHandle(self, task_id)

    def _publish(self, bodies: list[dict], single: bool = False) -> list[TaskHandle]:
        published = publish_retrying(lambda body: self._call("POST", "/tasks", body), bodies, single)
        return [TaskHandle(self, task_id) for task_id in published.ids()]

    def submit(self, function: str, *args: Any, **options: Any) -> TaskHandle:
        """Publish one task; returns its handle (retried safely while the server restarts)."""
        return self._publish([_body(function, args, options)], single=True)[0]

    def call_service(self, name: str, *args: Any, **kwargs: Any) -> TaskHandle:
        """Call service ``name`` (its deployed version) with ``args`` and ``kwargs``; returns the task's handle."""
        return self._publish([{"service": name, "args": list(args), "kwargs": kwargs}], single=True)[0]

    def submit_many(self, bodies: list[dict]) -> list[TaskHandle]:
        """Publish task bodies in one request (all or none); returns their handles in order."""
        return self._publish(bodies)

    # ------------------------------------------------------------- large data
    def upload(self, path: str | os.PathLike, name: str | None = None) -> dict:
        """Stream a file into the data store (never read whole); returns its metadata
        ``{"id", "name", "size", "sha256", "owner", "created_at"}``, checked against the file's
        sha256. Pass it to a task as ``{"__data__": meta["id"]}``: the function gets a local path."""
        from suanwang import transfer

        return transfer.upload(self, Path(path), name)

    def download(self, data_id: str, path: str | os.PathLike) -> dict:
        """Stream a data object into ``path`` (resumed after a lost connection, checked against its
        sha256, written under ``path`` only when whole); returns ``{"path", "size", "sha256"}``."""
        from suanwang import transfer

        return transfer.download(self, f"/data/{data_id}/content", Path(path))

    def data_info(self, data_id: str) -> dict:
        """A data object's metadata (``GET /api/v1/data/<id>``)."""
        return self._call("GET", f"/data/{data_id}")

    def delete_data(self, data_id: str) -> dict:
        """Delete a data object (the owner or an admin; refused while a live task uses it)."""
        return self._call("DELETE", f"/data/{data_id}")

    def credits(self, user: str) -> dict:
        """A user's credits: ``{"account", "balance", "low_notified"}`` (the user themself, or admin)."""
        return self._call("GET", f"/users/{user}")["credits"]

    def top_up(self, user: str, amount: float, note: str | None = None) -> dict:
        """Add ``amount`` credits to ``user`` (admin; negative: a correction); returns the account and entry."""
        return self._call("POST", f"/users/{user}/credits", {"amount": amount, "note": note})

    def ledger(self, user: str, limit: int = 50, skip: int = 0) -> dict:
        """One page of ``user``'s credit movements, newest first."""
        return self._call("GET", f"/users/{user}/ledger", params={"limit": limit, "skip": skip})

    def map(self, function: str, iterable: Iterable[Any], **options: Any) -> Iterator[Any]:
        """Publish ``function(item)`` for every item in bulk; yield the results in order."""
        items = list(iterable)
        handles: list[TaskHandle] = []
        for start in range(0, len(items), MAP_CHUNK):
            handles += self.submit_many([_body(function, [item], dict(options))
                                         for item in items[start:start + MAP_CHUNK]])
        for handle in handles:
            yield handle.result()


# ---------------------------------------------------------------- asynchronous
class AsyncTaskHandle:
    """One published task, for ``AsyncClient``."""

    def __init__(self, client: "AsyncClient", task_id: str):
        self.client, self.id = client, task_id

    def __repr__(self) -> str:
        return f"AsyncTaskHandle({self.id!r})"

    async def info(self) -> dict:
        return await self.client.get(self.id)

    async def status(self) -> str:
        return (await self.info())["status"]

    async def progress(self) -> dict | None:
        return (await self.info()).get("progress")

    async def cancel(self) -> dict:
        return await self.client._call("POST", f"/tasks/{self.id}/cancel")

    async def wait(self, timeout: float | None = None) -> dict:
        """Wait for the end, whatever it is; returns the task. ``TimeoutError`` after ``timeout`` seconds."""
        waiting = _Waiting(self.id, timeout)
        while (task := waiting.final(await _attempt_async(self.info))) is None:
            await asyncio.sleep(waiting.next_sleep())
        return task

    async def result(self, timeout: float | None = None) -> Any:
        task = await self.wait(timeout)
        if task["status"] == "succeeded" and task.get("result") is None and task.get("result_ref"):
            return await self.client._large_result(self.id)
        return _outcome(task, None)

    async def save_result(self, path: str | os.PathLike, timeout: float | None = None) -> dict:
        """``TaskHandle.save_result`` as a coroutine: the result streamed into ``path``."""
        from suanwang import async_transfer

        task = await self.wait(timeout)
        if task["status"] != "succeeded":
            raise TaskFailed(task)
        return await async_transfer.download(self.client._http(), self.client.base, f"/tasks/{self.id}/result",
                                             Path(path), (task.get("result_ref") or {}).get("sha256"))


class AsyncClient:
    """``Client`` as coroutines, on one ``aiohttp.ClientSession`` (use ``async with``, or ``close()``)."""

    def __init__(self, server_url: str, token: str, timeout: float = 30.0):
        self.base = server_url.rstrip("/") + "/api/v1"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout
        self._session = None

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike | None = None, **kwargs) -> "AsyncClient":
        return cls(*settings_from_env(data_dir), **kwargs)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self):
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers,
                                                  timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._session

    async def _call(self, method: str, path: str, body: Any = None, params: dict | None = None) -> Any:
        async with self._http().request(method, self.base + path, json=body, params=params) as resp:
            text = await resp.text()
            try:
                payload = json.loads(text)
            except ValueError:
                payload = None
            if resp.status >= 400:
                raise _error(resp.status, payload, text)
            return payload

    async def _large_result(self, task_id: str) -> Any:
        async with self._http().get(f"{self.base}/tasks/{task_id}/result") as resp:
            if resp.status >= 400:
                raise _error(resp.status, None, await resp.text())
            return await resp.json() if resp.content_type == "application/json" else await resp.read()

    async def get(self, task_id: str) -> dict:
        return await self._call("GET", f"/tasks/{task_id}")

    def task(self, task_id: str) -> AsyncTaskHandle:
        return AsyncTaskHandle(self, task_id)

    async def _publish(self, bodies: list[dict], single: bool = False) -> list[AsyncTaskHandle]:
        publishing = _Publishing(bodies, single)
        while (pause := publishing.after(await _attempt_async(self._call, "POST", "/tasks",
                                                              publishing.request()))) is not None:
            await asyncio.sleep(pause)
        return [AsyncTaskHandle(self, task_id) for task_id in publishing.ids()]

    async def submit(self, function: str, *args: Any, **options: Any) -> AsyncTaskHandle:
        return (await self._publish([_body(function, args, options)], single=True))[0]

    async def submit_many(self, bodies: list[dict]) -> list[AsyncTaskHandle]:
        return await self._publish(bodies)

    async def call_service(self, name: str, *args: Any, **kwargs: Any) -> AsyncTaskHandle:
        return (await self._publish([{"service": name, "args": list(args), "kwargs": kwargs}], single=True))[0]

    async def upload(self, path: str | os.PathLike, name: str | None = None) -> dict:
        """``Client.upload`` as a coroutine (the server checks the file's sha256 on arrival)."""
        from suanwang import async_transfer

        return await async_transfer.upload(self._http(), self.base, Path(path), name)

    async def download(self, data_id: str, path: str | os.PathLike) -> dict:
        from suanwang import async_transfer

        return await async_transfer.download(self._http(), self.base, f"/data/{data_id}/content", Path(path))

    async def data_info(self, data_id: str) -> dict:
        return await self._call("GET", f"/data/{data_id}")

    async def delete_data(self, data_id: str) -> dict:
        return await self._call("DELETE", f"/data/{data_id}")

    async def credits(self, user: str) -> dict:
        return (await self._call("GET", f"/users/{user}"))["credits"]

    async def top_up(self, user: str, amount: float, note: str | None = None) -> dict:
        return await self._call("POST", f"/users/{user}/credits", {"amount": amount, "note": note})

    async def ledger(self, user: str, limit: int = 50, skip: int = 0) -> dict:
        return await self._call("GET", f"/users/{user}/ledger", params={"limit": limit, "skip": skip})

    async def map(self, function: str, iterable: Iterable[Any], **options: Any) -> AsyncIterator[Any]:
        """Publish in bulk; yield the results in order (``async for``)."""
        items = list(iterable)
        handles: list[AsyncTaskHandle] = []
        for start in range(0, len(items), MAP_CHUNK):
            handles += await self.submit_many([_body(function, [item], dict(options))
                                               for item in items[start:start + MAP_CHUNK]])
        for handle in handles:
            yield await handle.result()
