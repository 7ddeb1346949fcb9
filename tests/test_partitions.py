"""fsm.partitions: which partitions a user may use, table-driven (no database)."""
from __future__ import annotations

import pytest

from fsm.partitions import ALL, is_open, open_partitions

GROUPS = [{"_id": "nlp-team", "partitions": ["nlp"]}, {"_id": "cv", "partitions": ["vision", "nlp"]},
          {"_id": "empty", "partitions": []}]


@pytest.mark.parametrize("user, expected", [
    ({"_id": "root", "role": "admin", "groups": []}, ALL),
    ({"_id": "b", "role": "business", "groups": []}, {"public"}),
    ({"_id": "b", "role": "business", "groups": ["nlp-team"]}, {"public", "nlp"}),
    ({"_id": "s", "role": "super", "groups": ["cv", "nlp-team"]}, {"public", "nlp", "vision"}),
    ({"_id": "g", "role": "general", "groups": ["empty", "no-such-group"]}, {"public"}),
    (None, set()),
])
def test_open_partitions(user, expected):
    got = open_partitions(user, GROUPS)
    assert got is ALL if expected is ALL else got == frozenset(expected)


@pytest.mark.parametrize("partitions, partition, expected", [
    (ALL, "secret", True), (frozenset({"public"}), None, True), (frozenset({"public"}), "nlp", False),
    (frozenset({"public", "nlp"}), "nlp", True), (frozenset(), "public", False),
])
def test_is_open(partitions, partition, expected):
    assert is_open(partitions, partition) is expected
