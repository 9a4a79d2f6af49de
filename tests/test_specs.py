"""The effective specs: valid, only adding to the published ones, every addition noted, every operation served."""

from __future__ import annotations

import pytest

from emulator.core import specs
from emulator.core.provider import ContractViolation
from emulator.providers import PROVIDERS, posteverywhere
from tests.helpers import AUTH, PE

PUBLISHED = {
    "paths": {
        "/a": {
            "post": {
                "operationId": "a",
                "responses": {"200": {"description": "ok"}},
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "required": ["x"], "properties": {"x": {"enum": [1, 2]}}}
                        }
                    }
                },
            }
        }
    },
}


@pytest.mark.parametrize("provider", specs.available())
def test_effective_spec_is_valid_and_only_adds(provider):
    assert specs.load(provider).check() == []


def test_all_four_providers_have_specs():
    assert specs.available() == ["autoposting", "posteverywhere", "segmentflow", "xenonflare"]


def test_an_overlay_cannot_change_a_published_value():
    with pytest.raises(specs.SpecError, match="may only add"):
        specs.merge(PUBLISHED, {"paths": {"/a": {"post": {"operationId": "b"}}}})


def test_an_overlay_may_add_fields_statuses_and_enum_values():
    overlay = {
        "paths": {
            "/a": {
                "post": {
                    "x-emulator-inferred": "test",
                    "responses": {"400": {"description": "bad"}},
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"properties": {"x": {"enum": [3]}, "y": {"type": "string"}}}
                            }
                        }
                    },
                }
            }
        }
    }
    merged = specs.merge(PUBLISHED, overlay)
    assert list(specs.dropped(PUBLISHED, merged)) == []
    schema = merged["paths"]["/a"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["x"]["enum"] == [1, 2, 3]
    assert list(specs.unnoted_additions(PUBLISHED, overlay)) == []


def test_an_overlay_may_widen_a_type_to_allow_null_but_not_replace_it():
    published = {"components": {"schemas": {"A": {"type": "object", "properties": {"x": {"type": "string"}}}}}}
    widened = specs.merge(
        published, {"components": {"schemas": {"A": {"properties": {"x": {"type": ["string", "null"]}}}}}}
    )
    assert widened["components"]["schemas"]["A"]["properties"]["x"]["type"] == ["string", "null"]
    assert list(specs.dropped(published, widened)) == []
    for other in ("integer", ["integer", "null"], ["null"]):
        with pytest.raises(specs.SpecError, match="may only add"):
            specs.merge(published, {"components": {"schemas": {"A": {"properties": {"x": {"type": other}}}}}})
    narrowed = {"components": {"schemas": {"A": {"type": "object", "properties": {"x": {"type": ["integer"]}}}}}}
    assert list(specs.dropped(published, narrowed))


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda s: s["paths"]["/a"]["post"]["responses"].pop("200"), "responses/200: missing"),
        (
            lambda s: s["paths"]["/a"]["post"]["requestBody"]["content"]["application/json"]["schema"][
                "required"
            ].clear(),
            "required/0",
        ),
        (
            lambda s: s["paths"]["/a"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"][
                "x"
            ].update(enum=[2]),
            "enum/0",
        ),
        (lambda s: s["paths"].pop("/a"), "paths//a: missing"),
    ],
)
def test_dropping_or_changing_published_text_is_detected(mutate, where):
    import copy

    effective = copy.deepcopy(PUBLISHED)
    mutate(effective)
    problems = list(specs.dropped(PUBLISHED, effective))
    assert any(where in p for p in problems), problems


def test_an_addition_without_a_note_is_detected():
    overlay = {"paths": {"/b": {"get": {"operationId": "b", "responses": {"200": {"description": "ok"}}}}}}
    assert list(specs.unnoted_additions(PUBLISHED, overlay)) == ["#/paths//b/get"]


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_spec_operation_has_a_handler_and_back(name):
    provider = PROVIDERS[name]
    operations = {op_id for op_id, *_ in provider.specs.operations()}
    assert operations == set(provider.handlers)


@pytest.mark.anyio
async def test_strict_mode_fails_loudly_when_a_response_leaves_the_spec(client, monkeypatch):
    def drifted_ok(call, reply):
        from starlette.responses import JSONResponse

        return JSONResponse({"data": reply.data, "error": None}, status_code=reply.status)  # meta forgotten

    monkeypatch.setattr(posteverywhere.PROVIDER, "ok", drifted_ok)
    with pytest.raises(ContractViolation, match="uploadMedia answered 201 outside its spec: meta: is required"):
        await client.post(
            f"{PE}/media/upload", headers=AUTH, json={"filename": "a.png", "content_type": "image/png", "size": 1}
        )


def test_a_path_alias_copies_operations_under_new_ids_and_refuses_what_it_cannot_copy():
    spec = {
        "paths": {"/v1/a": {"post": {"operationId": "a", "responses": {}}, "get": {"operationId": "g"}}},
        specs.PATH_ALIASES: {
            "/a": {"path": "/v1/a", "operationIds": {"post": "aAgain"}, specs.INFERRED_NOTE: "a newer page"}
        },
    }
    aliased = specs.with_path_aliases(spec)
    assert aliased["paths"]["/a"] == {
        "post": {"operationId": "aAgain", "responses": {}, specs.INFERRED_NOTE: "a newer page"}
    }
    assert aliased["paths"]["/v1/a"]["post"]["operationId"] == "a" and specs.PATH_ALIASES not in aliased
    for rule in (
        {"path": "/nope", "operationIds": {"post": "x"}, specs.INFERRED_NOTE: "n"},
        {"path": "/v1/a", "operationIds": {"post": "x"}},
        {"path": "/v1/a", "operationIds": {"put": "x"}, specs.INFERRED_NOTE: "n"},
    ):
        with pytest.raises(specs.SpecError):
            specs.with_path_aliases({**spec, specs.PATH_ALIASES: {"/a": rule}})
