"""fsm.references: finding and replacing {"__data__": id} / {"__result__": id} objects (pure)."""
from fsm.references import DATA, RESULT, references, substitute


def test_references_found_at_any_depth():
    value = [1, {"a": {"__data__": "d1"}, "b": [{"__result__": "t1"}, {"x": {"__data__": "d2"}}]}]
    assert sorted(references(value)) == [(DATA, "d1"), (DATA, "d2"), (RESULT, "t1")]


def test_objects_with_other_keys_are_data():
    assert list(references({"__data__": "d1", "other": 1})) == []
    assert list(references({"__data__": 5})) == []


def test_substitute_replaces_only_known_markers():
    value = {"k": [{"__data__": "d1"}, {"__result__": "t1"}], "n": 3}
    out = substitute(value, {DATA: lambda ident: f"path/{ident}"})
    assert out == {"k": ["path/d1", {"__result__": "t1"}], "n": 3}
    assert value["k"][0] == {"__data__": "d1"}  # the input is not changed
