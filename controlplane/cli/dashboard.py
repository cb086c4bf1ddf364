"""``controlplane dashboard``: where everything is. Prints the monitoring and debug URLs and,
for each connected proxy, its config dump URL and its Envoy admin when its node says where
(Istio's ``PROXY_CONFIG.proxyAdminPort`` metadata). ``--open TARGET`` opens one in a
browser: ``debug`` (default), ``metrics``, ``syncz``, ``configz``, ``push_status``, or a
proxy name (its Envoy admin if known, else our config dump for it)."""

from __future__ import annotations

import argparse
import urllib.parse
import webbrowser
from typing import Any

from controlplane.cli.monitoring_client import (
    FetchError,
    add_monitoring_address,
    base_url,
    dump,
    fail,
    fetch_json,
    table,
)

ENDPOINTS = {
    "metrics": "/metrics",
    "ready": "/healthz/ready",
    "debug": "/debug",
    "syncz": "/debug/syncz",
    "configz": "/debug/configz",
    "push_status": "/debug/push_status",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dashboard", help="where the metrics, debug endpoints and proxy admins are"
    )
    add_monitoring_address(p)
    p.add_argument(
        "--open",
        nargs="?",
        const="debug",
        metavar="TARGET",
        help="open a URL in the browser: debug (default), metrics, syncz, configz, "
        "push_status, or a proxy name",
    )
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def locations(monitoring_address: str) -> dict[str, Any]:
    """Every URL worth knowing, from the running control plane."""
    base = base_url(monitoring_address)
    streams = fetch_json(base + "/debug/syncz")
    proxies = []
    for s in streams:
        admin = s.get("admin_address")
        proxies.append(
            {
                "name": s.get("proxy"),
                "node_id": s.get("node_id"),
                "identity": s.get("spiffe_id"),
                "peer": s.get("peer"),
                "envoy_admin": f"http://{admin}" if admin else None,
                "config_dump": f"{base}/debug/config_dump?"
                + urllib.parse.urlencode({"proxyID": s.get("node_id")}),
            }
        )
    return {
        "control_plane": {name: base + path for name, path in ENDPOINTS.items()},
        "proxies": proxies,
    }


def render(where: dict[str, Any]) -> str:
    lines = ["Control plane:"]
    lines += [f"  {name:<12} {url}" for name, url in where["control_plane"].items()]
    proxies = where["proxies"]
    lines.append(f"\nProxies ({len(proxies)} connected):")
    text = "\n".join(lines) + "\n"
    if proxies:
        rows = [
            [p["name"], p["identity"] or "-", p["envoy_admin"] or "unknown", p["config_dump"]]
            for p in proxies
        ]
        text += table(["NAME", "IDENTITY", "ENVOY ADMIN", "CONFIG DUMP"], rows)
    return text


def run(args: argparse.Namespace) -> int:
    try:
        where = locations(args.monitoring_address)
    except FetchError as error:
        return fail(str(error))
    print(dump(where, "json") if args.output == "json" else render(where), end="")
    if args.open:
        url = where["control_plane"].get(args.open)
        if url is None:
            matches = [
                p
                for p in where["proxies"]
                if args.open in (p["name"], p["node_id"])
                or str(p["name"]).split(".", 1)[0] == args.open
            ]
            if not matches:
                return fail(
                    f"nothing called {args.open!r}: an endpoint ({', '.join(ENDPOINTS)}) or a proxy"
                )
            url = matches[0]["envoy_admin"] or matches[0]["config_dump"]
        print(f"opening {url}")
        webbrowser.open(url)
    return 0
