"""Property tests: random and mutated documents never crash the parser.

Whatever the input, ``parse`` returns a model or raises ValidationError / UnsupportedKind;
any other exception is a bug (a validator trusting a field the decoder did not check).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.model import KINDS, Resource, UnsupportedKind, ValidationError, parse
from tests.conftest import CONFORMANCE
from tests.model.corpus import sample_cases, validation_cases

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

if CONFORMANCE.is_dir():
    VALID_SEEDS: list[dict[str, Any]] = [
        c.doc
        for c in validation_cases(CONFORMANCE, "valid") + sample_cases(CONFORMANCE)
        if c.doc.get("kind") != "Deployment"
    ]
    SEEDS = VALID_SEEDS + [c.doc for c in validation_cases(CONFORMANCE, "invalid")]
else:  # still fuzz something without the corpus
    SEEDS = VALID_SEEDS = [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "r"},
            "spec": {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a"}}]}]},
        }
    ]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "*",
            "0",
            "80",
            "1s",
            "-1s",
            "10ms",
            "1.2.3.4",
            "1.2.3.4/33",
            "::1",
            "a/b",
            "unix:///x",
            "*.example.com",
            "ISTIO_MUTUAL",
            "STRICT",
            "(?=x)",
            "[",
            "a" * 70,
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _assert_parse_is_total(doc: Any) -> None:
    try:
        resource = parse(doc)
    except (ValidationError, UnsupportedKind):
        return
    assert isinstance(resource, Resource)
    hash(resource)


def _containers(value: Any, out: list[Any]) -> None:
    if isinstance(value, dict):
        out.append(value)
        for item in value.values():
            _containers(item, out)
    elif isinstance(value, list):
        out.append(value)
        for item in value:
            _containers(item, out)


def _same_type(value: Any) -> st.SearchStrategy[Any]:
    """A different value of the same JSON type, so that validators (not the decoder) are exercised."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(min_value=-(2**33), max_value=2**33) | st.sampled_from(
            [0, 1, 100, 65535, 65536]
        )
    if isinstance(value, float):
        return st.floats(allow_nan=True, allow_infinity=True)
    if isinstance(value, str):
        return st.text(max_size=12) | st.sampled_from(
            [
                "",
                "*",
                "0",
                "1s",
                "0s",
                "1.2.3.4",
                "::1",
                "*.a.b",
                "a/b",
                "(?=x)",
                "ns/*",
                "~/x",
                value * 2,
            ]
        )
    return json_values


@st.composite
def mutated_documents(
    draw: st.DrawFn, seeds: list[dict[str, Any]] | None = None, only_perturb: bool = False
) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(seeds or SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=1 if only_perturb else 4))):
        containers: list[Any] = []
        _containers(doc.get("spec", doc) if only_perturb else doc, containers)
        if not containers:
            break
        target = draw(st.sampled_from(containers))
        action = (
            "perturb"
            if only_perturb
            else draw(
                st.sampled_from(["replace", "drop", "insert", "retype", "perturb", "perturb"])
            )
        )
        if action == "perturb" and target:
            key = draw(
                st.sampled_from(list(target) if isinstance(target, dict) else range(len(target)))
            )
            target[key] = draw(_same_type(target[key]))
        elif isinstance(target, dict):
            keys = list(target)
            if action == "insert" or not keys:
                target[draw(st.text(max_size=10) | st.sampled_from(keys or ["x"]))] = draw(
                    json_values
                )
            elif action == "drop":
                del target[draw(st.sampled_from(keys))]
            elif action == "retype":
                key = draw(st.sampled_from(keys))
                value = target[key]
                target[key] = [value] if not isinstance(value, list) else {"k": value}
            else:
                target[draw(st.sampled_from(keys))] = draw(json_values)
        elif isinstance(target, list):
            if action == "insert" or not target:
                target.append(draw(json_values))
            elif action == "drop":
                target.pop(draw(st.integers(min_value=0, max_value=len(target) - 1)))
            else:
                target[draw(st.integers(min_value=0, max_value=len(target) - 1))] = draw(
                    json_values
                )
    return doc


@SETTINGS
@given(mutated_documents())
def test_mutated_corpus_documents_raise_only_validation_errors(doc: Any) -> None:
    _assert_parse_is_total(doc)


@SETTINGS
@given(mutated_documents(VALID_SEEDS, only_perturb=True))
def test_valid_documents_with_one_changed_value_raise_only_validation_errors(doc: Any) -> None:
    # Same-typed changes get past the decoder, so these exercise the semantic validators.
    _assert_parse_is_total(doc)


API_VERSIONS = sorted({v for k in KINDS for v in k.api_versions} | {"apps/v1", "v2", ""})
KIND_NAMES = sorted({k.kind for k in KINDS} | {"Deployment", ""})


@SETTINGS
@given(
    api_version=st.sampled_from(API_VERSIONS),
    kind=st.sampled_from(KIND_NAMES),
    metadata=json_values
    | st.fixed_dictionaries(
        {"name": st.text(max_size=8)}, optional={"namespace": json_values, "labels": json_values}
    ),
    body=st.dictionaries(
        st.sampled_from(
            [
                "spec",
                "status",
                "data",
                "endpoints",
                "ports",
                "addressType",
                "subsets",
                "stringData",
                "type",
            ]
        ),
        json_values,
        max_size=3,
    ),
)
def test_random_documents_raise_only_validation_errors(
    api_version: str, kind: str, metadata: Any, body: dict[str, Any]
) -> None:
    _assert_parse_is_total({"apiVersion": api_version, "kind": kind, "metadata": metadata, **body})


@SETTINGS
@given(json_values)
def test_any_json_value_is_handled(value: Any) -> None:
    _assert_parse_is_total(value)
