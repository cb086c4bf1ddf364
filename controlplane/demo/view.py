"""The live terminal view (rich): the current phase's numbers, and the tour's summary."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from controlplane.demo.phases import Phase
from controlplane.demo.propagation import Propagation
from controlplane.demo.stats import ANONYMOUS, JASON, USERS, UserSummary, WindowSummary

VERSIONS = ("v1", "v2", "v3")


@dataclass(frozen=True)
class PhaseView:
    phase: Phase
    number: int
    total: int
    summary: WindowSummary
    elapsed: float
    duration: float
    propagation: Propagation | None
    probe_address: str


@dataclass(frozen=True)
class PhaseResult:
    phase: Phase
    summary: WindowSummary
    propagation: Propagation | None

    def to_json(self) -> dict[str, object]:
        return {
            "phase": self.phase.key,
            "title": self.phase.title,
            "propagation": self.propagation.to_json() if self.propagation else None,
            "traffic": self.summary.to_json(),
        }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _pct(part: int, whole: int) -> str:
    return "-" if not whole else f"{100 * part / whole:.0f}%"


def propagation_text(propagation: Propagation | None) -> Text:
    if propagation is None:
        return Text("no change to propagate", style="dim")
    reached = sum(v is not None for v in propagation.per_sidecar.values())
    total = len(propagation.per_sidecar)
    if propagation.complete and propagation.slowest is not None:
        fastest = min(v for v in propagation.per_sidecar.values() if v is not None)
        return Text(
            f"change in every proxy concerned ({reached}/{total}) after {propagation.slowest * 1000:.0f} ms "
            f"(first after {fastest * 1000:.0f} ms)",
            style="green",
        )
    missing = ", ".join(k for k, v in propagation.per_sidecar.items() if v is None)
    return Text(f"change reached {reached}/{total} proxies; missing: {missing}", style="bold red")


def traffic_table(summary: WindowSummary) -> Table:
    table = Table(title="requests to productpage, by user", title_justify="left", expand=False)
    table.add_column("user")
    table.add_column("requests", justify="right")
    for version in VERSIONS:
        table.add_column(f"reviews {version}", justify="right")
    table.add_column("errors", justify="right")
    for label in ("p50 ms", "p95 ms", "p99 ms"):
        table.add_column(label, justify="right")
    for user in USERS:
        stats = summary.users.get(user)
        if stats is None:
            continue
        answered = sum(stats.versions.values())
        table.add_row(
            user,
            str(stats.requests),
            *(_pct(stats.versions.get(v, 0), answered) for v in VERSIONS),
            Text(_pct(stats.errors, stats.requests), style="red" if stats.errors else ""),
            _ms(stats.p50_ms),
            _ms(stats.p95_ms),
            _ms(stats.p99_ms),
        )
    return table


def identity_table(summary: WindowSummary) -> Table:
    table = Table(
        title="caller identity each service saw (x-forwarded-client-cert)", title_justify="left"
    )
    table.add_column("service")
    table.add_column("caller")
    table.add_column("calls", justify="right")
    for callee, callers in summary.identities.items():
        for caller, count in callers.items():
            style = "yellow" if caller == "none" else ""
            table.add_row(
                callee,
                Text(
                    "plaintext (no client certificate)" if caller == "none" else caller, style=style
                ),
                str(count),
            )
    return table


DENIED = "403"


def calls_table(summary: WindowSummary) -> Table:
    """Every hop by caller, with its HTTP statuses: a 403 is a refusal by the callee's
    AuthorizationPolicy (RBAC: access denied)."""
    table = Table(
        title="calls by caller (403: refused by an AuthorizationPolicy)", title_justify="left"
    )
    table.add_column("caller -> service path")
    table.add_column("calls", justify="right")
    table.add_column("200", justify="right")
    table.add_column("403", justify="right")
    table.add_column("other")
    for edge, statuses in summary.calls.items():
        denied = statuses.get(DENIED, 0)
        other = ", ".join(f"{k} x{n}" for k, n in statuses.items() if k not in ("200", DENIED))
        table.add_row(
            edge,
            str(sum(statuses.values())),
            str(statuses.get("200", 0)),
            Text(str(denied), style="bold red" if denied else ""),
            Text(other or "-", style="yellow" if other else "dim"),
        )
    return table


def errors_text(summary: WindowSummary) -> Text:
    kinds: dict[str, int] = {}
    for stats in summary.users.values():
        for kind, count in stats.error_kinds.items():
            kinds[kind] = kinds.get(kind, 0) + count
    if not kinds:
        return Text("errors: none", style="green")
    return Text("errors: " + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())), style="red")


def probe_text(summary: WindowSummary, address: str) -> Text:
    if not summary.probes:
        return Text(f"plaintext caller (no sidecar) -> {address}: no probe yet", style="dim")
    refused = summary.probes - summary.probes_accepted
    outcomes = ", ".join(f"{k} x{n}" for k, n in summary.probe_outcomes.items())
    style = "yellow" if summary.probes_accepted else "green"
    return Text(
        f"plaintext caller (no sidecar) -> {address}: {summary.probes_accepted} accepted, "
        f"{refused} refused ({outcomes})",
        style=style,
    )


def render_phase(view: PhaseView) -> RenderableType:
    body = Group(
        Text(view.phase.story, style="italic"),
        propagation_text(view.propagation),
        traffic_table(view.summary),
        errors_text(view.summary),
        calls_table(view.summary),
        identity_table(view.summary),
        probe_text(view.summary, view.probe_address),
        Text(f"{view.elapsed:.0f} s / {view.duration:.0f} s", style="dim"),
    )
    return Panel(
        body, title=f"phase {view.number}/{view.total}: {view.phase.title}", title_align="left"
    )


def _shares(stats: UserSummary | None) -> str:
    if stats is None:
        return "-"
    answered = sum(stats.versions.values())
    return "/".join(_pct(stats.versions.get(v, 0), answered) for v in VERSIONS)


def render_summary(results: list[PhaseResult]) -> Table:
    table = Table(title="tour summary", title_justify="left")
    table.add_column("phase")
    table.add_column("propagation", justify="right")
    table.add_column("others v1/v2/v3")
    table.add_column("jason v1/v2/v3")
    table.add_column("errors", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("plaintext caller")
    table.add_column("403s", justify="right")
    for result in results:
        users = result.summary.users
        prop = result.propagation

        requests = result.summary.requests
        errors = sum(u.errors for u in users.values())
        p99 = max((u.p99_ms for u in users.values() if u.p99_ms is not None), default=None)
        probes = result.summary
        plaintext = f"{probes.probes_accepted}/{probes.probes} accepted" if probes.probes else "-"
        table.add_row(
            result.phase.key,
            "-"
            if prop is None
            else (f"{prop.slowest * 1000:.0f} ms" if prop.slowest is not None else "incomplete"),
            _shares(users.get(ANONYMOUS)),
            _shares(users.get(JASON)),
            _pct(errors, requests),
            _ms(p99),
            plaintext,
            str(sum(s.get(DENIED, 0) for s in result.summary.calls.values())),
        )
    return table
