"""``controlplane serve`` on a folder of bad input (issue 19), as a real subprocess: a document
nested 400 levels deep, two symbolic link loops and a 1 MB name. It used to exit at startup
(RecursionError) or never get ready (the loops); now it serves, shows each problem in
``/debug/configz``, and keeps reading the folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.harness.control_plane import served_control_plane
from tests.harness.wait import wait_for

SERVICE = """apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{app: {app}}}
  ports: [{{name: http, port: 80}}]
"""
DEEP = (
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
    "metadata: {name: deep}\nspec:\n  hosts: [deep]\n  http: " + "[" * 400 + "]" * 400 + "\n"
)


def test_bad_input_at_startup_is_reported_and_the_folder_keeps_flowing(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "a.yaml").write_text(SERVICE.format(name="alpha", app="alpha"))
    (config / "deep.yaml").write_text(DEEP)
    (config / "huge.yaml").write_text(SERVICE.format(name="x" * 1_000_000, app="huge"))
    os.symlink(".", config / "loop-a")
    os.symlink(".", config / "loop-b")
    with served_control_plane(tmp_path, config) as served:

        def configz() -> dict[str, Any]:
            status, body = served.get("/debug/configz")
            assert status == 200
            result: dict[str, Any] = json.loads(body)
            return result

        first = configz()
        assert first["resources"] == ["Service default/alpha"]
        errors = first["errors"]
        assert f"{config / 'deep.yaml'}:6: error: document 1: nested more than 100 levels deep" in (
            errors
        )
        assert [e for e in errors if "symbolic link loop" in e] == [
            f"{config / link}: warning: symbolic link loop back to {config}; not followed"
            for link in ("loop-a", "loop-b")
        ]
        [huge] = [e for e in errors if e.startswith(f"{config / 'huge.yaml'}:")]
        assert "chars cut]" in huge and len(huge) < 3_000

        (config / "loop-a").unlink()
        (config / "loop-b").unlink()
        (config / "b.yaml").write_text(SERVICE.format(name="beta", app="beta"))
        wait_for(
            lambda: "Service default/beta" in configz()["resources"],
            message="a file written later is read",
        )
        assert not [e for e in configz()["errors"] if "symbolic link loop" in e]
        assert max(len(line) for line in served.log().splitlines()) < 10_000
