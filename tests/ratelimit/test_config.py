"""envoyproxy/ratelimit's descriptor YAML: what it accepts, and errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.model.base import ValidationError
from controlplane.ratelimit.config import load_config, parse_domain

# The ConfigMap of Istio's global rate limit task (samples/ratelimit/rate-limit-service.yaml).
ISTIO_TASK = """
domain: echo-ratelimit
descriptors:
  - key: PATH
    value: "/"
    rate_limit:
      unit: minute
      requests_per_unit: 1
  - key: PATH
    rate_limit:
      unit: minute
      requests_per_unit: 100
"""


def test_istio_task_config_and_lookups() -> None:
    config = parse_domain(yaml.safe_load(ISTIO_TASK))
    assert config.domain == "echo-ratelimit"
    from controlplane.ratelimit.config import Config

    c = Config({config.domain: config})
    node, key = c.find("echo-ratelimit", [("PATH", "/")])
    assert node is not None and node.rate_limit.requests_per_unit == 1 and key == "PATH_/"
    node, key = c.find("echo-ratelimit", [("PATH", "/other")])
    assert node is not None and node.rate_limit.requests_per_unit == 100 and key == "PATH_/other"
    assert c.find("echo-ratelimit", [("HOST", "x")])[0] is None
    assert c.find("other-domain", [("PATH", "/")])[0] is None


def test_nested_and_prefix_descriptors() -> None:
    config = parse_domain({"domain": "d", "descriptors": [
        {"key": "remote_address", "descriptors": [
            {"key": "path", "value": "/api*", "rate_limit": {"unit": "second", "requests_per_unit": 5}}]}]})
    from controlplane.ratelimit.config import Config

    c = Config({"d": config})
    node, _ = c.find("d", [("remote_address", "10.0.0.1"), ("path", "/api/v1")])
    assert node is not None and node.rate_limit.unit == "second"
    assert c.find("d", [("remote_address", "10.0.0.1"), ("path", "/web")])[0] is None
    # Only the first entry: a node with no limit of its own.
    node, _ = c.find("d", [("remote_address", "10.0.0.1")])
    assert node is not None and node.rate_limit is None


@pytest.mark.parametrize(("doc", "path"), [
    ({"descriptors": []}, "domain"),
    ({"domain": "d", "descriptors": [{"value": "x"}]}, "descriptors[0].key"),
    ({"domain": "d", "descriptors": [{"key": "k", "rate_limit": {"unit": "fortnight", "requests_per_unit": 1}}]},
     "descriptors[0].rate_limit.unit"),
    ({"domain": "d", "descriptors": [{"key": "k", "rate_limit": {"unit": "second", "requests_per_unit": -1}}]},
     "descriptors[0].rate_limit.requests_per_unit"),
    ({"domain": "d", "descriptors": [{"key": "k", "descriptors": [{"key": "a"}, {"key": "a"}]}]},
     "descriptors[0].descriptors[1]"),
    ({"domain": "d", "descriptors": [{"key": "k", "rate_limit": {"unlimited": True, "unit": "second"}}]},
     "descriptors[0].rate_limit"),
])
def test_errors_name_the_field(doc: dict, path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_domain(doc)
    assert any(e.path == path for e in caught.value.errors), caught.value.errors


def test_load_folder_refuses_a_domain_twice(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ISTIO_TASK)
    (tmp_path / "b.yaml").write_text(ISTIO_TASK)
    with pytest.raises(ValidationError, match="duplicate domain"):
        load_config([tmp_path])
    (tmp_path / "b.yaml").write_text("domain: other\ndescriptors: []\n")
    assert sorted(load_config([tmp_path]).domains) == ["echo-ratelimit", "other"]
