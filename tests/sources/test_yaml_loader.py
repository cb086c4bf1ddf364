from __future__ import annotations

from pathlib import Path

import yaml

from controlplane.sources import yaml_loader
from controlplane.sources.yaml_loader import load_file, load_yaml

TEXT = """\
# leading comment
apiVersion: v1
kind: Service
metadata:
  name: a
  labels:
    app.kubernetes.io/name: a
spec:
  ports:
  - name: http
    port: 80
  - name: grpc
    port: 90
---
kind: Broken
metadata: {name: [unclosed
---
---
apiVersion: v1
kind: List
items:
- kind: Service
  metadata: {name: b}
- kind: Pod
  metadata:
    name: c
...
---
- not a mapping
...
%YAML 1.1
---
kind: AfterDirective
metadata: {name: d}
"""


def test_documents_origins_and_neighbours_of_a_broken_document() -> None:
    result = load_yaml(TEXT, "f.yaml")
    assert [(d.body["kind"], d.origin.line) for d in result.documents] == [
        ("Service", 2),
        ("Service", 22),
        ("Pod", 24),
        ("AfterDirective", 33),
    ]
    assert all(d.origin.file == "f.yaml" for d in result.documents)
    assert [(p.origin.line, p.message.split(":")[0]) for p in result.problems] == [
        (16, "invalid YAML"),
        (29, "a document must be a mapping, not list"),
    ]


def test_line_of_field_paths() -> None:
    (service, b, c, _) = load_yaml(TEXT, "f.yaml").documents
    assert service.line_of("spec.ports[1].port") == 13
    assert service.line_of("spec.ports[1]") == 12
    assert service.line_of("metadata.labels.app.kubernetes.io/name") == 7
    assert service.line_of('metadata.labels["app.kubernetes.io/name"]') == 7
    assert service.line_of("spec.ports[5].port") == 9  # missing item: its nearest ancestor
    assert service.line_of("spec.missing.deeper") == 8
    assert service.line_of("") == 2
    assert c.line_of("metadata.name") == 26  # inside an unwrapped List
    assert b.line_of("metadata.name") == 23


def test_uses_the_libyaml_loader() -> None:
    assert yaml_loader._Loader is yaml.CSafeLoader


def test_unreadable_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    result = load_file(path)
    assert result.documents == () and "cannot read file" in result.problems[0].message
    assert load_file(tmp_path / "absent.yaml").problems[0].origin.file.endswith("absent.yaml")


def test_safe_loader_refuses_python_tags() -> None:
    result = load_yaml("kind: X\nvalue: !!python/object/apply:os.system ['true']\n", "evil.yaml")
    assert result.documents == () and result.problems


def test_colons_inside_flow_sequences_read_as_kubernetes_reads_them() -> None:
    # libyaml rejects this and PyYAML's own scanner makes a mapping of "2001:db8::";
    # go-yaml (Kubernetes, Istio) reads two strings.
    result = load_yaml(
        "kind: ServiceEntry\nspec:\n  addresses: [1.2.3.4, 2001:db8::]\n  x: {a: b}\n", "se.yaml"
    )
    assert result.problems == ()
    (document,) = result.documents
    assert document.body["spec"] == {"addresses": ["1.2.3.4", "2001:db8::"], "x": {"a": "b"}}
    assert document.line_of("spec.addresses[1]") == 3
