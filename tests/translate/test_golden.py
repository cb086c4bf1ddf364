"""Golden files: tests/golden/<case>/{input,proxy}.yaml in, one YAML per xDS type out
(``extension_configs.yaml``, the ECDS filter configs, only where a filter gets one).

Rewrite with ``pytest tests/translate --update-golden``. Every case's output is also
loaded into a real Envoy (``envoy --mode validate``), which must accept all of it.
"""

from __future__ import annotations

import pytest

from tests.translate.support import (
    CASES,
    GOLDEN,
    OPTIONAL_OUTPUT_FILES,
    OUTPUT_FILES,
    dump_yaml,
    run_case,
    to_dicts,
    validate_many,
)


def test_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, update_golden: bool) -> None:
    out = run_case(name)
    case = GOLDEN / name
    expected_files = set()
    for type_url, filename in OUTPUT_FILES.items():
        text = dump_yaml(to_dicts(out[type_url]))
        path = case / filename
        expected_files.add(filename)
        if update_golden:
            path.write_text(text)
        else:
            assert path.is_file(), f"{path} missing: run pytest --update-golden"
            assert path.read_text() == text, f"{name}/{filename} differs from golden"
    for type_url, filename in OPTIONAL_OUTPUT_FILES.items():
        path = case / filename
        if type_url not in out:
            assert update_golden or not path.is_file(), f"{path} is stale: run pytest --update-golden"
            continue
        text = dump_yaml(to_dicts(out[type_url]))
        expected_files.add(filename)
        if update_golden:
            path.write_text(text)
        else:
            assert path.is_file(), f"{path} missing: run pytest --update-golden"
            assert path.read_text() == text, f"{name}/{filename} differs from golden"
    if update_golden:  # stale outputs of types we no longer produce
        for stale in case.glob("*.yaml"):
            if stale.name not in expected_files | {"input.yaml", "proxy.yaml"}:
                stale.unlink()


def test_translation_is_deterministic() -> None:
    for name in CASES[:5]:
        a, b = run_case(name), run_case(name)
        assert {k: [m.SerializeToString(deterministic=True) for m in v] for k, v in a.items()} == {
            k: [m.SerializeToString(deterministic=True) for m in v] for k, v in b.items()
        }


@pytest.mark.envoy
def test_envoy_accepts_every_golden_case() -> None:
    failures = validate_many({name: run_case(name) for name in CASES})
    assert not failures, "Envoy rejected: " + "\n\n".join(f"[{k}]\n{v}" for k, v in sorted(failures.items()))


@pytest.mark.envoy
def test_envoy_validation_names_a_rejected_case() -> None:
    from controlplane.translate import ROUTE_TYPE

    good, bad = run_case("redirect"), run_case("direct_response")
    route = bad[ROUTE_TYPE][0].virtual_hosts[0].routes[0]
    route.match.safe_regex.regex = "(unclosed"  # RE2 refuses it
    failures = validate_many({"good": good, "bad": bad})
    assert set(failures) == {"bad"}
