"""``controlplane proxy-status``: is every proxy in sync, as ``istioctl proxy-status``.

Reads /debug/syncz from the monitoring port. Per xDS type a proxy is SYNCED (it ACKed
what we sent last), STALE (sent, no answer yet), NACK (it rejected what we sent last;
it keeps running its previous config), NOT SENT (asked, nothing sent yet) or IGNORED
(never asked for that type). With a PROXY, every type is shown in detail.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from controlplane.cli.monitoring_client import (
    FetchError,
    add_monitoring_address,
    ago,
    base_url,
    dump,
    fail,
    fetch_json,
    table,
)

TYPES = ("CDS", "LDS", "EDS", "RDS", "SDS", "ECDS")  # ECDS: filter configs (RBAC, jwt_authn)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "proxy-status", help="xDS sync state of every connected proxy (like istioctl proxy-status)"
    )
    p.add_argument("proxy", nargs="?", help="one proxy (node id, pod.namespace or pod) in detail")
    add_monitoring_address(p)
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        streams = fetch_json(base_url(args.monitoring_address) + "/debug/syncz")
    except FetchError as error:
        return fail(str(error))
    if args.proxy:
        streams = [s for s in streams if _matches(args.proxy, s)]
        if not streams:
            return fail(f"no connected proxy {args.proxy!r}")
    if args.output != "table":
        print(dump(streams, args.output), end="")
    elif args.proxy:
        print(render_detail(streams), end="")
    else:
        print(render_table(streams), end="")
    return 0


def _matches(query: str, stream: dict[str, Any]) -> bool:
    name = str(stream.get("proxy", ""))
    return query in (stream.get("node_id"), name) or name.split(".", 1)[0] == query


def type_cell(state: dict[str, Any] | None, now: float) -> str:
    """``SYNCED (3s)``: the state and how long ago it was reached."""
    if state is None:
        return "IGNORED"
    name = state.get("state", "")
    when = {
        "SYNCED": state.get("acked_at"),
        "STALE": state.get("sent_at"),
        "NACK": (state.get("last_nack") or {}).get("at"),
    }.get(name)
    return f"{name} ({ago(when, now)})" if when else name


def render_table(streams: list[dict[str, Any]], now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows = []
    problems = []
    for s in streams:
        types = s.get("types") or {}
        rows.append(
            [s.get("proxy"), s.get("cluster") or "-"]
            + [type_cell(types.get(t), now) for t in TYPES]
            + [s.get("spiffe_id") or "-"]
        )
        for type_name, state in types.items():
            if state.get("state") == "NACK":
                nack = state.get("last_nack") or {}
                problems.append(
                    f"{s.get('proxy')} {type_name} NACK of version {nack.get('version') or '?'} "
                    f"({ago(nack.get('at'), now)} ago): {str(nack.get('error', '')).strip()}"
                )
    text = table(["NAME", "CLUSTER", *TYPES, "IDENTITY"], rows)
    if problems:
        text += "\nRejected config (the proxy keeps its previous version):\n"
        text += "".join(f"  {line}\n" for line in problems)
    return text


def render_detail(streams: list[dict[str, Any]], now: float | None = None) -> str:
    now = time.time() if now is None else now
    out = []
    for s in streams:
        out.append(f"Proxy:     {s.get('proxy')}\n")
        out.append(f"Node ID:   {s.get('node_id')}\n")
        out.append(f"Identity:  {s.get('spiffe_id') or 'none (no credential: no secrets)'}\n")
        out.append(
            f"Stream:    {s.get('stream_id')} ({s.get('kind')} {s.get('service')}) "
            f"from {s.get('peer')}, connected {ago(s.get('connected_at'), now)} ago\n"
        )
        out.append(f"Group:     {s.get('group')}\n")
        rows = []
        types = s.get("types") or {}
        for type_name in sorted(types, key=lambda t: TYPES.index(t) if t in TYPES else len(TYPES)):
            t = types[type_name]
            rows.append(
                [
                    type_name,
                    t.get("state"),
                    t.get("version_sent") or "-",
                    t.get("version_acked") or "-",
                    ago(t.get("sent_at"), now) or "-",
                    ago(t.get("acked_at"), now) or "-",
                    t.get("resources_sent"),
                ]
            )
        out.append(
            "\n"
            + table(["TYPE", "STATE", "SENT", "ACKED", "SENT AGO", "ACKED AGO", "RESOURCES"], rows)
        )
        for type_name, t in types.items():
            nack = t.get("last_nack")
            if nack:
                current = "" if t.get("state") == "NACK" else " (since superseded)"
                out.append(
                    f"\n{type_name} NACK{current}, version {nack.get('version') or '?'}, "
                    f"{ago(nack.get('at'), now)} ago:\n  {str(nack.get('error', '')).strip()}\n"
                )
        out.append("\n")
    return "".join(out)
