"""The capture rules as iptables-restore input (pure) and the flags they come from."""

from __future__ import annotations

import pytest

from controlplane.capture.rules import nat_rules, restore_input
from controlplane.capture.spec import CaptureError, CaptureSpec, spec_from_args


def test_default_capture_is_istios() -> None:
    rules = nat_rules(spec_from_args(["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
                                      "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]))
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in rules
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in rules
    assert "-A PREROUTING -p tcp -j ISTIO_INBOUND" in rules
    assert "-A OUTPUT -p tcp -j ISTIO_OUTPUT" in rules
    for port in ("15090", "15021", "15020", "15008"):
        assert f"-A ISTIO_INBOUND -p tcp --dport {port} -j RETURN" in rules
    # The proxy's own traffic leaves; the app's goes to Envoy, after loopback and exclusions.
    owner = rules.index("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN")
    assert rules.index("-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN") > owner
    assert rules[-1] == "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"
    assert rules.index("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN") < len(rules) - 1


def test_excluded_ports_and_ranges_and_included_subsets() -> None:
    spec = spec_from_args(["-i", "10.96.0.0/12", "-x", "10.96.0.1/32", "-b", "9080,9443",
                           "-d", "15090,15021,9443", "-o", "6379,5432", "-q", "8080"])
    rules = nat_rules(spec)
    assert "-A ISTIO_OUTPUT -p tcp --dport 6379 -j RETURN" in rules
    assert "-A ISTIO_OUTPUT -p tcp --dport 5432 -j RETURN" in rules
    assert "-A ISTIO_OUTPUT -d 10.96.0.1/32 -j RETURN" in rules
    assert "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT" in rules
    assert "-A ISTIO_OUTPUT -j ISTIO_REDIRECT" not in rules
    assert "-A ISTIO_OUTPUT -p tcp --dport 8080 -j ISTIO_REDIRECT" in rules
    # Only the listed inbound ports are captured, less the excluded ones.
    assert "-A ISTIO_INBOUND -p tcp --dport 9080 -j ISTIO_IN_REDIRECT" in rules
    assert not any("--dport 9443 -j ISTIO_IN_REDIRECT" in r for r in rules)


def test_no_inbound_capture_and_none_mode() -> None:
    rules = nat_rules(spec_from_args(["-b", ""]))
    assert not any("ISTIO_INBOUND" in r for r in rules)
    assert restore_input(CaptureSpec(mode="NONE")) == ""


def test_restore_input_is_one_atomic_nat_transaction() -> None:
    text = restore_input(CaptureSpec(exclude_inbound_ports=("15090",)))
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert ":ISTIO_OUTPUT - [0:0]" in lines


@pytest.mark.parametrize("args, message", [
    (["-i", "bad"], "-i"), (["-b", "x"], "-b"), (["-d", "*"], "-d"),
    (["-o", "70000"], "-o"), (["-m", "MAGIC"], "-m"), (["stray"], "unexpected"),
])
def test_bad_flags_are_named(args: list[str], message: str) -> None:
    with pytest.raises(CaptureError, match=message):
        spec_from_args(args)


def test_args_round_trip() -> None:
    spec = CaptureSpec(exclude_outbound_ports=("6379",), exclude_outbound_ranges=("10.0.0.0/8",),
                       include_outbound_ports=("80",), kube_virt_interfaces=("net1",))
    assert spec_from_args(spec.args()) == spec


def test_tproxy_is_refused_clearly() -> None:
    with pytest.raises(CaptureError, match="REDIRECT"):
        nat_rules(CaptureSpec(mode="TPROXY"))
