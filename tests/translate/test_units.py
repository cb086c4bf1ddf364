"""The unit cache (translate/units.py): built once per key, whole outputs kept while their
inputs are equal, and bounded: audits drop what is no longer used."""

from __future__ import annotations

from controlplane.translate.units import Ident, UnitCache


def test_a_unit_is_built_once_per_key_and_an_identity_key_never_matches_an_equal_object() -> None:
    units = UnitCache()
    built: list[str] = []

    def build(name: str) -> str:
        built.append(name)
        return name.upper()

    a, b = ["rule"], ["rule"]  # equal, not the same object
    assert units.get(("x", Ident(a)), lambda: build("a")) == "A"
    assert units.get(("x", Ident(a)), lambda: build("a again")) == "A"
    assert units.get(("x", Ident(b)), lambda: build("b")) == "B"
    assert built == ["a", "b"]


def test_latest_is_reused_while_its_inputs_are_equal_and_rebuilt_on_an_audit() -> None:
    units = UnitCache(audit_every=3)
    calls: list[int] = []

    def build(n: int) -> int:
        calls.append(n)
        return n

    assert units.latest("slot", (1, "a"), lambda: build(1)) == 1  # the first push is an audit
    units.end_push()
    assert units.latest("slot", (1, "a"), lambda: build(2)) == 1
    assert units.latest("slot", (2, "a"), lambda: build(3)) == 3  # other inputs
    units.end_push()
    units.end_push()
    assert units.audit
    assert units.latest("slot", (2, "a"), lambda: build(4)) == 4  # an audit takes no shortcut
    assert calls == [1, 3, 4]


def test_an_audit_drops_the_units_it_did_not_use() -> None:
    units = UnitCache(audit_every=2)
    for key in ("kept", "gone"):
        units.get(key, lambda: 0)
    units.end_push()  # audit: both in use
    units.get("new", lambda: 0)
    units.end_push()  # the next push audits
    assert units.audit
    units.get("kept", lambda: 1)
    units.end_push()
    assert len(units) == 1
    assert units.get("kept", lambda: 2) == 0, "the unit built first"


def test_units_added_without_pushes_stay_bounded() -> None:
    units = UnitCache(min_limit=100)
    units.end_push()
    for key in range(10_000):  # endpoint pushes alone: new units, no full push
        units.get(key, lambda: None)
    assert len(units) <= 4 * 100 + 2
    units.end_push()
    assert units.audit, "past its limit the next push audits"
