"""Write a run's results: results.json, summary.md (with ratios to the floor and the goals) and
PNG plots, into ``benchmarks/results/<date-time>/``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

GOALS = {  # on 2 cores, S=1,000 services, P=1,000 proxies (goals to report against, not tests)
    "cold_start_max_ms": 5000,
    "endpoint_churn_p99_ms": 300,
    "routing_change_p99_ms": 1000,
    "peak_rss_mb": 500,
    # Issue 16: p99 within 1.5x of the floor at P=1,000 (3x at P=10), peak RSS within 1.2x.
    "ratio_to_floor": 1.5,
    "rss_ratio_to_floor": 1.2,
}


def results_dir(root: Path) -> Path:
    path = root / dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=False)
    return path


def ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours / floor for each scenario run on both."""
    floor = {r["scenario"]: r for r in runs if r["target"] == "floor"}
    out = []
    for r in runs:
        base = floor.get(r["scenario"])
        if r["target"] == "floor" or base is None:
            continue
        out.append({
            "scenario": r["scenario"], "target": r["target"],
            "p99": _ratio(r["convergence_ms"]["p99"], base["convergence_ms"]["p99"]),
            "max": _ratio(r["convergence_ms"]["max"], base["convergence_ms"]["max"]),
            "cpu_seconds": _ratio(r.get("cpu_seconds"), base.get("cpu_seconds")),
            "peak_rss": _ratio(r.get("peak_rss_mb"), base.get("peak_rss_mb")),
            "bytes_sent": _ratio(r.get("bytes_sent"), base.get("bytes_sent")),
        })
    return out


def goals(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The goals, for each target measured beside the floor (controlplane, controlplane-kube;
    not the floor's own variants such as floor-2proc, which the ratios compare)."""
    rows = []
    targets = list(dict.fromkeys(r["target"] for r in runs if not r["target"].startswith("floor")))
    all_ratios = ratios(runs)
    for target in targets:
        ours = {r["scenario"]: r for r in runs if r["target"] == target}

        def row(goal: str, limit: float, value: Any, note: str = "", target: str = target) -> None:
            rows.append({"goal": goal, "target": target, "limit": limit, "value": value,
                         "met": None if value is None else value <= limit, "note": note})

        if "cold_start" in ours:
            r = ours["cold_start"]
            row("cold start converged (max, ms)", GOALS["cold_start_max_ms"],
                r["convergence_ms"]["max"], f"S={r['services']} P={r['proxies']}")
        if "endpoint_churn" in ours:
            r = ours["endpoint_churn"]
            row("endpoint change p99 (ms)", GOALS["endpoint_churn_p99_ms"],
                r["convergence_ms"]["p99"], f"S={r['services']} P={r['proxies']}")
        if "routing_change" in ours:
            r = ours["routing_change"]
            row("routing change p99 (ms)", GOALS["routing_change_p99_ms"],
                r["convergence_ms"]["p99"], f"S={r['services']} P={r['proxies']}")
        row("peak RSS (MB)", GOALS["peak_rss_mb"],
            max(r.get("peak_rss_mb") or 0 for r in ours.values()))
        mine = [ratio for ratio in all_ratios if ratio["target"] == target]
        for ratio in mine:
            row(f"{ratio['scenario']} p99 / floor", GOALS["ratio_to_floor"], ratio["p99"])
        for ratio in mine:
            row(f"{ratio['scenario']} peak RSS / floor", GOALS["rss_ratio_to_floor"],
                ratio["peak_rss"])
    return rows


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or b in (None, 0):
        return None
    return round(a / b, 2)


def write(results: dict[str, Any], directory: Path) -> list[Path]:
    results = {**results, "ratios": ratios(results["runs"]), "goals": goals(results["runs"])}
    written = [directory / "results.json", directory / "summary.md"]
    written[0].write_text(json.dumps(results, indent=2, sort_keys=False))
    written.extend(plots(results, directory))
    written[1].write_text(markdown(results, [p.name for p in written[2:]]))
    return written


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines + [""]


def markdown(results: dict[str, Any], images: list[str]) -> str:
    meta = results["meta"]
    cfg = meta["config"]
    spec = cfg["spec"]
    out = [
        "# Control plane load benchmark", "",
        (f"Run {meta['started']} - {meta.get('finished', '?')} on {meta['machine']['cpus']} CPUs, "
         f"{meta['machine']['platform']}, Python {meta['machine']['python']}."), "",
        (f"Mesh: {spec['services']:,} services x {spec['endpoints']} endpoints, "
         f"{spec['virtual_services']} VirtualServices, {spec['destination_rules']} "
         f"DestinationRules, {spec['namespaces']} namespaces; {cfg['proxies']:,} simulated "
         f"proxies in {cfg['groups']} workload groups, ADS {cfg['mode']}."), "",
        ("Convergence: from the moment a change is made (file renamed into the watched folder, "
         "the Kubernetes API double's acknowledgement of the change's first write for "
         "controlplane-kube, or the floor's batch written) to the ACK of the response that "
         "first carried it, per proxy; `last` = the slowest proxy of each change. Times in ms. "
         "CPU s and peak RSS are the server's (its process and children; not the API double's "
         "nor the load clients'); clients' CPU s tells when the load clients themselves were "
         "busy."), "",
        "## Scenarios", "",
    ]
    rows = []
    for r in results["runs"]:
        c = r["convergence_ms"]
        rows.append([r["scenario"], r["target"], f"{r['converged']}/{r['expected']}",
                     c["p50"], c["p95"], c["p99"], c["max"], r.get("cpu_seconds"),
                     r.get("peak_rss_mb"), r.get("rss_per_proxy_kb"),
                     round(r.get("bytes_sent", 0) / 2**20, 1), r.get("client_cpu_seconds")])
    out += _table(["scenario", "target", "converged", "p50", "p95", "p99", "max", "CPU s",
                   "peak RSS MB", "RSS/proxy KB", "MB sent", "clients' CPU s"], rows)
    accounted = [r for r in results["runs"] if (r.get("server") or {}).get("pushes")]
    if accounted:
        out += ["## Where the server's time went (its own metrics)", "",
                ("Pushes made in the scenario; mean ms a change waited in the debounce "
                 "(`pilot_debounce_time`), a push took (`pilot_xds_push_time`) and a proxy "
                 "waited in the push queue (`pilot_proxy_queue_time`)."), ""]
        out += _table(["scenario", "target", "pushes", "debounce ms", "push ms", "queue ms"],
                      [[r["scenario"], r["target"], r["server"]["pushes"],
                        r["server"]["debounce_ms_mean"], r["server"]["push_ms_mean"],
                        r["server"]["queue_ms_mean"]] for r in accounted])
    if results.get("ratios"):
        out += ["## Ratios to the floor (ours / floor)", ""]
        out += _table(["scenario", "target", "p99", "max", "CPU s", "peak RSS", "bytes"],
                      [[r["scenario"], r["target"], r["p99"], r["max"], r["cpu_seconds"],
                        r["peak_rss"], r["bytes_sent"]] for r in results["ratios"]])
    if results.get("goals"):
        out += ["## Goals (2 cores, S=1,000, P=1,000)", ""]
        out += _table(["goal", "target", "limit", "measured", "met", "run"],
                      [[g["goal"], g.get("target", "controlplane"), g["limit"], g["value"],
                        {True: "yes", False: "NO", None: "-"}[g["met"]], g["note"]]
                       for g in results["goals"]])
    if results.get("scaling_services"):
        out += ["## Scaling with services (cold start of a few proxies)", ""]
        out += _table(["services", "target", "in-process translate s", "server ready s",
                       "cold start max ms", "peak RSS MB", "CPU s"],
                      [[r["services"], r["target"], r.get("translation_seconds_in_process"),
                        r.get("ready_seconds"), r["convergence_ms"]["max"], r.get("peak_rss_mb"),
                        r.get("cpu_seconds")] for r in results["scaling_services"]])
    if results.get("scaling_proxies"):
        out += ["## Scaling with proxies", ""]
        out += _table(["proxies", "target", "cold start max ms", "churn p99 ms", "peak RSS MB",
                       "RSS/proxy KB"],
                      [[s["cold_start"]["proxies"], s["cold_start"]["target"],
                        s["cold_start"]["convergence_ms"]["max"],
                        s["endpoint_churn"]["convergence_ms"]["p99"],
                        s["cold_start"].get("peak_rss_mb"), s["cold_start"].get("rss_per_proxy_kb")]
                       for s in results["scaling_proxies"]])
    if results.get("envoy"):
        out += ["## Endpoint churn with real Envoys", ""]
        out += _table(["target", "envoys", "converged", "p50", "p99", "max", "note"],
                      [[r["target"], r["envoys"], f"{r['converged']}/{r['expected']}",
                        r["convergence_ms"]["p50"], r["convergence_ms"]["p99"],
                        r["convergence_ms"]["max"], r.get("note", "")] for r in results["envoy"]])
    peer = results.get("peer") or {}
    if peer:
        out += ["## Peer: sovereign (REST/JSON polling)", ""]
        if "skipped" in peer or "error" in peer:
            out += [f"Not measured: {peer.get('skipped') or peer.get('error')}", ""]
        else:
            render = peer["render_and_serve_ms"]
            out += [(f"{peer['clients']:,} polling clients (every {peer['poll_seconds']} s), "
                     f"{peer['clusters']:,} clusters, {peer['response_bytes']:,} bytes of JSON per "
                     f"response; one render+serve: p50 {render['p50']} ms, max {render['max']} "
                     f"ms; started in {peer['startup_seconds']} s."), ""]
            out += _table(["phase", "converged", "p50", "p99", "max", "CPU s", "peak RSS MB", "MB sent"],
                          [[phase, f"{r['converged']}/{r['expected']}", r["convergence_ms"]["p50"],
                            r["convergence_ms"]["p99"], r["convergence_ms"]["max"],
                            r.get("cpu_seconds"), r.get("peak_rss_mb"),
                            round(r.get("bytes_sent", 0) / 2**20, 1)]
                           for phase, r in (("cold start", peer["cold_start"]),
                                            ("new cluster", peer["new_cluster"]))])
    if results.get("errors"):
        out += ["## Errors", ""] + [f"- {e['target']}: {e['error']}" for e in results["errors"]] + [""]
    out += [f"![{name}]({name})" for name in images]
    return "\n".join(out) + "\n"


def plots(results: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    runs = results["runs"]
    if runs:
        scenarios = sorted({r["scenario"] for r in runs}, key=[r["scenario"] for r in runs].index)
        targets = sorted({r["target"] for r in runs})
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        width = 0.8 / max(1, len(targets))
        for t_i, target in enumerate(targets):
            by = {r["scenario"]: r for r in runs if r["target"] == target}
            xs = [i + t_i * width for i in range(len(scenarios))]
            p50 = [(by.get(s) or {}).get("convergence_ms", {}).get("p50") or 0 for s in scenarios]
            p99 = [(by.get(s) or {}).get("convergence_ms", {}).get("p99") or 0 for s in scenarios]
            color = f"C{t_i}"
            axes[0].bar(xs, p99, width, label=f"{target} p99", color=color, alpha=0.4)
            axes[0].bar(xs, p50, width, label=f"{target} p50", color=color)
            axes[1].bar(xs, [(by.get(s) or {}).get("peak_rss_mb") or 0 for s in scenarios], width,
                        label=target, color=color)
        for ax, title in zip(axes, ("convergence (ms, log)", "peak RSS of the server (MB)")):
            ax.set_xticks([i + width * (len(targets) - 1) / 2 for i in range(len(scenarios))])
            ax.set_xticklabels(scenarios, rotation=15)
            ax.set_title(title)
            ax.legend()
        axes[0].set_yscale("log")
        fig.tight_layout()
        path = directory / "scenarios.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    for key, x_label, series in (
        ("scaling_services", "services", [("cold start max (ms)", lambda r: r["convergence_ms"]["max"]),
                                          ("peak RSS (MB)", lambda r: r.get("peak_rss_mb"))]),
        ("scaling_proxies", "proxies", [("cold start max (ms)", lambda s: s["cold_start"]["convergence_ms"]["max"]),
                                        ("churn p99 (ms)", lambda s: s["endpoint_churn"]["convergence_ms"]["p99"]),
                                        ("peak RSS (MB)", lambda s: s["cold_start"].get("peak_rss_mb"))]),
    ):
        rows = results.get(key) or []
        if not rows:
            continue
        fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 4))
        for row_target in sorted({_target(r) for r in rows}):
            mine = sorted((r for r in rows if _target(r) == row_target), key=lambda r: _x(r, x_label))
            for ax, (title, get) in zip(axes, series):
                ax.plot([_x(r, x_label) for r in mine], [get(r) or 0 for r in mine], marker="o",
                        label=row_target)
        for ax, (title, _) in zip(axes, series):
            ax.set_xscale("log")
            ax.set_xlabel(x_label)
            ax.set_title(title)
            ax.legend()
        fig.tight_layout()
        path = directory / f"{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _target(row: dict[str, Any]) -> str:
    return row.get("target") or row["cold_start"]["target"]


def _x(row: dict[str, Any], label: str) -> int:
    inner = row if "target" in row else row["cold_start"]
    return inner[label]
