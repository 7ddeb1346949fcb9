"""The task body is described once (fsm.store.spec.FIELDS): the OpenAPI schema is generated
from it and its bounds are exactly the validator's; the error body's details are documented."""
from __future__ import annotations

import pytest

from fsm.errors import PayloadTooLarge, ValidationError
from fsm.identifiers import GRAMMARS
from fsm.store import spec
from scheduler import openapi
from tests.apiserver import api  # noqa: F401  (fixture)

SCHEMA = spec.json_schema()
#: Fields whose bounds hold only together with another field's value.
CONTEXT = {"quorum": {"redundancy": spec.MAX_REDUNDANCY}}


def _bounded():
    for name, prop in SCHEMA["properties"].items():
        yield from ((name, prop, key) for key in ("minimum", "maximum") if key in prop)
    for name, prop in SCHEMA["properties"]["requires"]["properties"].items():
        yield from ((f"requires.{name}", prop, key) for key in ("minimum", "maximum") if key in prop)


def _body(path: str, value) -> dict:
    if path.startswith("requires."):
        return {"function": "echo", "requires": {path.split(".", 1)[1]: value}}
    return {"function": "echo", **CONTEXT.get(path, {}), path: value}


@pytest.mark.parametrize("path,prop,key", list(_bounded()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_bound_of_the_schema_is_the_validators_bound(path, prop, key):
    bound = prop[key]
    step = 1 if prop["type"] == "integer" else max(abs(bound) * 1e-9, 1e-9)
    # The bound itself is accepted
    spec.validate(_body(path, bound))
    # ... and one step past it is refused, naming the field
    beyond = bound - step if key == "minimum" else bound + step
    with pytest.raises(ValidationError) as info:
        spec.validate(_body(path, beyond))
    assert info.value.details["field"] == path.split(".")[-1] or info.value.details["field"] == path
    assert str(bound) in info.value.message or f"{bound:g}" in info.value.message


def test_patterns_and_lengths_are_the_validators():
    for name, prop in SCHEMA["properties"].items():
        grammar = spec.FIELDS[name].grammar
        if grammar is not None:
            assert prop["pattern"] == grammar.posix == GRAMMARS[grammar.name].posix
            for bad in grammar.refused:
                with pytest.raises(ValidationError):
                    spec.validate({"function": "echo", name: bad})
        if "maxLength" in prop:
            spec.validate({"function": "echo", name: "v" * prop["maxLength"]})
            with pytest.raises(ValidationError):
                spec.validate({"function": "echo", name: "v" * (prop["maxLength"] + 1)})
    assert set(SCHEMA["properties"]) == spec.ALLOWED and SCHEMA["required"] == ["function"]
    tags = SCHEMA["properties"]["requires"]["properties"]["tags"]["items"]["pattern"]
    assert tags == GRAMMARS["tag"].posix


def test_a_field_the_schema_does_not_have_is_refused():
    with pytest.raises(ValidationError) as info:
        spec.validate({"function": "echo", "colour": "red"})
    assert info.value.details["field"] == "colour"
    with pytest.raises(PayloadTooLarge):
        spec.validate({"function": "echo", "args": ["x" * spec.MAX_PAYLOAD_BYTES]})


def test_the_served_document_carries_the_generated_schema_and_the_error_details(api):  # noqa: F811
    doc = api.call("GET", "/openapi.json").json()
    assert doc["components"]["schemas"]["Task"] == SCHEMA == openapi.TASK_BODY
    error = doc["components"]["schemas"]["Error"]["properties"]["error"]
    assert {"code", "message", "field", "index", "ids", "right"} <= set(error["properties"])
    assert doc["paths"]["/healthz"]["get"]["security"] == [] and "security" not in doc["paths"]["/tasks"]["get"]
    patch = doc["paths"]["/tasks/{task_id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert patch["properties"]["priority"]["maximum"] == spec.PRIORITY_RANGE[1]
    # a refusal's body carries the documented details
    refused = api.call("POST", "/tasks", "admin", json=[{"function": "echo"}, {"function": "echo",
                                                                               "timeout_s": 0}]).json()["error"]
    assert set(refused) <= set(error["properties"]) and refused["index"] == 1 and refused["field"] == "timeout_s"
