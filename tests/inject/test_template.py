"""What injection adds for the agent: the app's own Prometheus settings reach its args."""

from __future__ import annotations

from controlplane.inject import InjectorSettings, inject_template
from controlplane.inject.workload import WorkloadMeta


def _proxy_args(annotations: dict[str, str]) -> list[str]:
    injected = inject_template({"name": "p", "annotations": annotations}, {"containers": [{"name": "app"}]},
                               WorkloadMeta("p", "default"), InjectorSettings())
    proxy = next(c for c in injected.spec["initContainers"] if c["name"] == "istio-proxy")
    if annotations.get("prometheus.io/scrape") != "false":  # Prometheus scrapes the agent
        assert injected.metadata["annotations"]["prometheus.io/port"] == "15020"
    return proxy["args"]


def test_app_metrics_are_merged_by_the_agent() -> None:
    args = _proxy_args({"prometheus.io/scrape": "true", "prometheus.io/port": "9100", "prometheus.io/path": "/m"})
    assert args[args.index("--app-metrics-port") + 1] == "9100"
    assert args[args.index("--app-metrics-path") + 1] == "/m"
    assert "--app-metrics-port" not in _proxy_args({})
    assert "--app-metrics-port" not in _proxy_args({"prometheus.io/scrape": "false", "prometheus.io/port": "9100"})
