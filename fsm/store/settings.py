"""Server-wide values in ``settings`` (``{_id: key, value}``), such as the web session key."""
from __future__ import annotations

from typing import Any, Callable

from pymongo.database import Database


class SettingsStore:
    def __init__(self, db: Database):
        self.settings = db.settings

    def value_or_create(self, key: str, make: Callable[[], Any]) -> Any:
        """The stored value of ``key``; the first caller stores ``make()`` (every process then agrees)."""
        self.settings.update_one({"_id": key}, {"$setOnInsert": {"value": make()}}, upsert=True)
        return self.settings.find_one({"_id": key})["value"]
