"""The registry's stored layout, described in one place, and its verbs.

``functions`` — one registered version of a function (``_id``: ``"<code>@<version>"``)
    code (e.g. ``func1``), version, name, description
    developer_name, developer_contact, developer_cell
    repo (the name of a ``repos`` document), repo_url (its location at registration)
    ref (what the registrant named: tag, branch or SHA), commit (the full SHA it resolved to)
    entrypoint (``module:function``), path (the module's file in the commit)
    content (the module's source text, read from the commit)
    requires {gpus, mem_gb, tags}     defaults for tasks of this version (optional)
    price {per_call, per_cpu_s, per_gpu_s}   credits its tasks cost (optional; ``fsm.pricing``)
    public (bool: business users may publish tasks of it), deprecated (bool: never chosen
    when a task names no version), registered_by, create_time, update_time
    serial (an ObjectId: breaks ties between versions registered in the same millisecond)
    A version is immutable: code, version, repo, commit, entrypoint and content never change;
    only public, deprecated and update_time do.
    Indexes: unique (code, version) as ``_id``; (code, deprecated, create_time desc) for
    "newest non-deprecated" (newest = registered last, whatever the version string says); (create_time desc) for listing.

``repos`` — one repository that workers may pull from (``_id``: its short name)
    url (a normalised git URL, or an absolute local path), kind (``url`` | ``path``),
    description, added_by, create_time
    Indexes: unique url.
"""
from __future__ import annotations

from datetime import datetime, timezone

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fsm.errors import Conflict, FunctionNotFound, NotFound

FUNCTION_INDEXES = [
    IndexModel([("code", ASCENDING), ("deprecated", ASCENDING), ("create_time", DESCENDING), ("serial", DESCENDING)],
               name="code_newest"),
    IndexModel([("create_time", DESCENDING)], name="created"),
]
NEWEST = [("create_time", DESCENDING), ("serial", DESCENDING)]
#: Fields a listing shows; ``content`` only comes with one version.
SUMMARY = {"content": 0}


def now() -> datetime:
    return datetime.now(timezone.utc)


def function_id(code: str, version: str) -> str:
    return f"{code}@{version}"


def new_serial() -> ObjectId:
    """A ``serial``: breaks ties between versions registered in the same millisecond."""
    return ObjectId()


def registry_stores(source) -> tuple["FunctionStore", "RepoStore"]:
    """The registry's verbs over a ``Store`` (its ``functions`` and ``repos``) or a ``Database``."""
    functions = getattr(source, "functions", None)
    if isinstance(functions, FunctionStore):
        return functions, source.repos
    return FunctionStore(source), RepoStore(source)


def ensure_indexes(db) -> None:
    """Create the registry's indexes (idempotent; a ``Store`` made them when it connected)."""
    if not isinstance(db, Database):
        return
    db.functions.create_indexes(FUNCTION_INDEXES)
    db.repos.create_indexes([IndexModel([("url", ASCENDING)], name="url", unique=True)])


class FunctionStore:
    """Verbs over ``functions``."""

    def __init__(self, db: Database):
        self.functions = db.functions

    def insert(self, doc: dict) -> dict:
        """Insert a new version; raises Conflict when (code, version) exists."""
        doc = {**doc, "_id": function_id(doc["code"], doc["version"])}
        try:
            self.functions.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"function {doc['code']} version {doc['version']} is already registered") from None
        return doc

    def get(self, code: str, version: str, *, content: bool = True) -> dict:
        doc = self.functions.find_one({"_id": function_id(code, version)}, None if content else SUMMARY)
        if doc is None:
            raise FunctionNotFound(f"function {code!r} has no version {version!r}" if self.exists(code)
                                   else f"unknown function {code!r}")
        return doc

    def find(self, code: str, version: str) -> dict | None:
        return self.functions.find_one({"_id": function_id(code, version)})

    def exists(self, code: str) -> bool:
        return self.functions.find_one({"code": code}, {"_id": 1}) is not None

    def newest(self, code: str) -> dict | None:
        """The newest non-deprecated version of ``code`` (by registration time), or None."""
        return self.functions.find_one({"code": code, "deprecated": False}, SUMMARY,
                                       sort=NEWEST, hint="code_newest")

    def list(self, code: str | None = None, *, include_deprecated: bool = True, public_only: bool = False,
             partitions: frozenset[str] | None = None, skip: int = 0, limit: int = 0) -> tuple[list[dict], int]:
        query: dict = {}
        if code:
            query["code"] = code
        if not include_deprecated:
            query["deprecated"] = False
        if public_only:
            query["public"] = True
        if partitions is not None:  # a version registered before partitions existed is in "public"
            query["partition"] = {"$in": sorted(partitions) + ([None] if "public" in partitions else [])}
        total = self.functions.count_documents(query)
        cursor = self.functions.find(query, SUMMARY).sort([("code", ASCENDING), ("create_time", DESCENDING)])
        return list(cursor.skip(skip).limit(limit)), total

    def partitions(self) -> list[str]:
        """Every partition some function version is in (one registered before partitions: public)."""
        return sorted({p or "public" for p in self.functions.distinct("partition")} | {"public"})

    def by_commits(self, commits: list[str]) -> list[dict]:
        return list(self.functions.find({"commit": {"$in": commits}}, {"code": 1, "version": 1, "commit": 1}))

    def set_flags(self, code: str, version: str, **flags: bool) -> dict:
        """Change the mutable flags (public, deprecated) of one version."""
        doc = self.functions.find_one_and_update(
            {"_id": function_id(code, version)}, {"$set": {**flags, "update_time": now()}},
            projection=SUMMARY, return_document=ReturnDocument.AFTER)
        if doc is None:
            raise FunctionNotFound(f"function {code!r} has no version {version!r}")
        return doc


class RepoStore:
    """Verbs over ``repos``."""

    def __init__(self, db: Database):
        self.repos = db.repos

    def insert(self, doc: dict) -> dict:
        try:
            self.repos.insert_one(doc)
        except DuplicateKeyError:
            other = self.repos.find_one({"$or": [{"_id": doc["_id"]}, {"url": doc["url"]}]})
            raise Conflict(f"repository {other['_id']!r} ({other['url']}) is already registered"
                           if other else f"repository {doc['_id']!r} is already registered") from None
        return doc

    def find(self, name_or_url: str) -> dict | None:
        """The repository named ``name_or_url``, or registered at that exact location."""
        return self.repos.find_one({"$or": [{"_id": name_or_url}, {"url": name_or_url}]})

    def get(self, name: str) -> dict:
        doc = self.repos.find_one({"_id": name})
        if doc is None:
            raise NotFound(f"repository {name!r} is not registered")
        return doc

    def list(self) -> list[dict]:
        return list(self.repos.find().sort("_id", ASCENDING))
