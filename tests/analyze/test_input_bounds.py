"""``controlplane analyze`` on input the loader refuses (issue 19): a document nested too deep
and a 1 MB name are reported like any error, named by file, and the other files are still
analyzed."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.cli.analyze import main as analyze_main

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


def test_deep_and_huge_input_are_reported_and_the_rest_analyzed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text(SERVICE.format(name="alpha", app="alpha"))
    (tmp_path / "deep.yaml").write_text(SERVICE.format(name="beta", app="beta") + "---\n" + DEEP)
    (tmp_path / "huge.yaml").write_text(SERVICE.format(name="x" * 1_000_000, app="huge"))
    code = analyze_main([str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    deep = [line for line in out if line.startswith(f"{tmp_path / 'deep.yaml'}:")]
    assert deep == [
        f"{tmp_path / 'deep.yaml'}:13: error: document 2: nested more than 100 levels deep"
    ]
    huge = [line for line in out if line.startswith(f"{tmp_path / 'huge.yaml'}:")]
    assert len(huge) == 1 and "metadata.name" in huge[0] and len(huge[0]) < 3_000
    assert not [line for line in out if "a.yaml" in line]
