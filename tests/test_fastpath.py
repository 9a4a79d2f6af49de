"""The compiled fast path never accepts a body that openapi-core rejects (property test, every JSON operation)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

from emulator.core.specs import available, load
from emulator.core.validation import SpecValidator, _Param, field_errors

SPECS = [*available(), "_emulator"]


def json_operations() -> list[tuple[str, str, str]]:
    out = []
    for name in SPECS:
        for _, method, path, operation in load(name).operations():
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                out.append((name, path, method))
    return out


def collect(schema: Any, spec: dict[str, Any], names: set[str], literals: list[Any], depth: int = 0) -> None:
    """Property names and literal values (enums, consts, bounds) anywhere in the schema: the interesting inputs."""
    if depth > 12 or not isinstance(schema, dict):
        return
    if "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"][2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        collect(node, spec, names, literals, depth + 1)
    for key, value in schema.items():
        if key == "properties":
            names.update(value)
            for sub in value.values():
                collect(sub, spec, names, literals, depth + 1)
        elif key in ("enum",):
            literals.extend(value)
        elif key in ("const", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
            literals.append(value)
        elif isinstance(value, dict):
            collect(value, spec, names, literals, depth + 1)
        elif isinstance(value, list):
            for sub in value:
                collect(sub, spec, names, literals, depth + 1)


def values(literals: list[Any]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
        st.uuids().map(str),
        st.datetimes().map(lambda d: d.isoformat() + "Z"),
        st.sampled_from(literals or [0]),
        st.sampled_from(literals or [0]).map(lambda v: v + 1 if isinstance(v, int) and not isinstance(v, bool) else v),
        st.sampled_from(literals or ["x"]).map(lambda v: "x" * v if isinstance(v, int) and 0 <= v < 600 else v),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=6,
    )


@pytest.mark.parametrize("name, path, method", json_operations())
def test_fast_path_never_accepts_what_openapi_core_rejects(name, path, method):
    effective = load(name).effective
    contract = SpecValidator(effective).contract(path, method)
    fast = contract._fast
    assert fast is not None, "every JSON operation of our specs gets a fast path"
    schema = effective["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]
    names: set[str] = set()
    literals: list[Any] = []
    collect(schema, effective, names, literals)
    bodies = st.dictionaries(st.sampled_from(sorted(names) or ["x"]), values(literals), max_size=len(names) + 1)

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.one_of(bodies, values(literals)))
    def agree(body: Any) -> None:
        try:
            fast(body)
        except Exception:  # the fast path said no: openapi-core decides, nothing to compare
            return
        try:
            contract._body.validate(body)
        except InvalidSchemaValue as exc:
            raise AssertionError(
                f"fast path accepted {body!r}, openapi-core says {field_errors(exc.schema_errors)[0].message}"
            ) from exc

    agree()


def resolve(node: Any, spec: dict[str, Any]) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def parameters() -> list[tuple[str, str, str]]:
    return [
        (name, path, method)
        for name in SPECS
        for _, method, path, operation in load(name).operations()
        if SpecValidator(load(name).effective).contract(path, method).has_parameters
    ]


@pytest.mark.parametrize("name, path, method", parameters())
def test_parameter_fast_path_never_accepts_what_openapi_core_rejects(name, path, method):
    effective = load(name).effective
    contract = SpecValidator(effective).contract(path, method)
    params = contract._params
    assert params and all(param.fast is not None for param in params), "every parameter gets a fast path"
    for param in params:
        declared = [
            *effective["paths"][path][method.lower()].get("parameters", []),
            *effective["paths"][path].get("parameters", []),
        ]
        schema = next(p for p in map(lambda p: resolve(p, effective), declared) if p["name"] == param.name)["schema"]
        literals: list[Any] = []
        collect(schema, effective, set(), literals)
        # what a request carries: text, typed the way the pipeline types it before validation (_Param._cast)
        raw = st.one_of(
            st.text(max_size=12),
            st.sampled_from([str(v) for v in literals] or ["x"]),
            st.integers(-(2**40), 2**40).map(str),
            st.sampled_from(["true", "false", "1.5", " 7"]),
        )
        agrees_with_openapi_core(param, raw)


def agrees_with_openapi_core(param: _Param, raw: st.SearchStrategy[str]) -> None:
    """Whatever text the fast path of ``param`` accepts, openapi-core accepts too."""
    fast = param.fast
    assert fast is not None

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(raw)
    def agree(text: str) -> None:
        value = param._cast(text)
        try:
            fast(value)
        except Exception:  # the fast path said no: openapi-core decides
            return
        try:
            param.validator.validate(value)
        except InvalidSchemaValue as exc:
            raise AssertionError(
                f"{param.name}: fast path accepted {value!r}, openapi-core says "
                f"{field_errors(exc.schema_errors)[0].message}"
            ) from exc

    agree()


@pytest.mark.parametrize("negated", [{"const": "video/mp4"}, {"enum": [".", ".."]}, {"enum": ["a$b", "x\\", "(?"]}])
@pytest.mark.parametrize(
    "value", ["video/mp4", "video/mp4\n", "xvideo/mp4", ".", "..", "...", ".\n", "", "a$b", "x\\", "(?", 3, None, ["."]]
)
def test_a_not_of_strings_compiles_to_the_same_check_without_not(negated, value):
    """The fast path checks ``not: {const|enum: strings}`` by a pattern; it accepts exactly what ``not`` accepts."""
    import fastjsonschema

    from emulator.core.fastpath import compile_fast

    fast = compile_fast({"not": negated}, {}, lambda: None)  # type: ignore[arg-type,return-value]  # no format used
    assert fast is not None
    reference = fastjsonschema.compile({"not": negated})
    outcomes = []
    for check in (fast, reference):
        try:
            check(value)
            outcomes.append(True)
        except fastjsonschema.JsonSchemaValueException:
            outcomes.append(False)
    assert outcomes[0] == outcomes[1], (negated, value)
