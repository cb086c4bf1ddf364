from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controlplane.analysis import analyze_paths
from controlplane.cli.analyze import main as analyze_main

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str]]:
    """Exit status and stdout lines; stderr (the summary) is kept in ``run.err``."""
    code = analyze_main([str(a) for a in args])
    captured = capsys.readouterr()
    run.err = captured.err  # type: ignore[attr-defined]
    return code, captured.out.splitlines()


def sample_files(conformance_dir: Path) -> list[Path]:
    return sorted(
        p for p in (conformance_dir / "samples").rglob("*") if p.suffix in (".yaml", ".yml")
    )


def test_every_istio_sample_file_passes_without_error(
    conformance_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sample_files(conformance_dir)
    assert len(files) >= 20
    for file in files:
        code, out = run(capsys, file)
        assert code == 0, f"{file}:\n" + "\n".join(out)
        assert not [line for line in out if ": error: " in line]


def test_the_samples_folder_as_a_whole(conformance_dir: Path) -> None:
    report = analyze_paths([conformance_dir / "samples"])
    assert report.errors == ()
    assert len(report.inputs.files) == len(sample_files(conformance_dir))
    # Deployments and ServiceAccounts are read (workloads) but are not errors.
    kinds = {p.document.body["kind"] for p in report.inputs.documents}
    assert {
        "Deployment",
        "ServiceAccount",
        "Service",
        "VirtualService",
        "DestinationRule",
        "Gateway",
    } <= kinds


def test_valid_conformance_files_pass(
    conformance_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for file in sorted((conformance_dir / "validation").glob("*-valid.yaml")):
        code, out = run(capsys, file)
        assert code == 0 and not [line for line in out if ": error: " in line], (
            f"{file}:\n" + "\n".join(out)
        )


def test_every_invalid_conformance_document_is_an_error(
    conformance_dir: Path, tmp_path: Path
) -> None:
    for file in sorted((conformance_dir / "validation").glob("*-invalid.yaml")):
        for index, document in enumerate(d for d in yaml.safe_load_all(file.read_text()) if d):
            istio_says = document.pop("_err", "")
            single = tmp_path / f"{file.stem}-{index}.yaml"
            single.write_text(yaml.safe_dump(document))
            report = analyze_paths([single])
            assert report.errors, f"{file} document {index} accepted; Istio says: {istio_says}"


BAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: -5
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: prod
spec:
  selector:
    app: reviews
  ports:
  - name: http
    port: 99999
---
kind: Gateway
metadata: {name: [broken
"""


def test_bad_file_errors_name_file_line_resource_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    code, out = run(capsys, bad)
    assert code == 1
    errors = [line for line in out if ": error: " in line]
    assert errors[0].startswith(
        f"{bad}:13: VirtualService default/reviews: spec.http[0].route[0].weight: error: "
    )
    assert errors[1].startswith(f"{bad}:25: Service prod/reviews: spec.ports[0].port: error: ")
    assert errors[2].startswith(f"{bad}:28: error: invalid YAML")
    assert len(errors) == 3
    assert "3 error(s), 0 warning(s) in 1 file(s)" in run.err  # type: ignore[attr-defined]


def test_missing_path_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, tmp_path / "absent.yaml")
    assert code == 1 and "no such file" in out[0]


def test_the_installed_command_exits_1_on_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = subprocess.run(
        [sys.executable, "-m", "controlplane.cli.analyze", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert f"{bad}:25: Service prod/reviews: spec.ports[0].port: error:" in result.stdout
    assert "3 error(s)" in result.stderr


DOMAIN = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      weight: 50
    - destination: {host: reviews.shop.svc.corp.internal}
      weight: 50
"""


def test_domain_suffix_is_istios_and_the_old_form_still_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--domain-suffix`` is Istio's domainSuffix (Services are <name>.<ns>.svc.<suffix>);
    the old ``svc.<suffix>`` spelling means the same, so users' scripts keep working."""
    config = tmp_path / "shop.yaml"
    config.write_text(DOMAIN)
    for suffix in ("corp.internal", "svc.corp.internal"):
        code, out = run(capsys, config, "--domain-suffix", suffix)
        assert (code, out) == (0, []), out
    # The default is cluster.local: the corp.internal FQDN is then unknown (and named so).
    code, out = run(capsys, config)
    assert code == 0 and len(out) == 1
    assert '"reviews.shop.svc.corp.internal" (reviews.shop.svc.corp.internal) is not defined' in out[0]
    assert analyze_paths([config], domain_suffix="corp.internal").diagnostics == ()
