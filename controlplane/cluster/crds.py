"""CustomResourceDefinitions for the Istio kinds the control plane serves, generated from the
model's own dataclasses, so that what the API server admits and what the control plane
parses are one definition.

Each model annotation becomes a structural OpenAPI v3 schema (the subset the Kubernetes API
server accepts): ``str`` a string, ``int`` an integer, ``Literal`` an enum, ``int | str``
``x-kubernetes-int-or-string``, ``timedelta`` a string in Go's duration syntax, ``tuple[X,
...]`` an array, ``Mapping[str, X]`` an object of X, ``object`` any JSON
(``x-kubernetes-preserve-unknown-fields``), a nested dataclass an object with its fields
(those without a default are required). A model that refers to itself (a recursive type)
is cut at the second visit with ``x-kubernetes-preserve-unknown-fields``: structural schemas
have no references. Semantic rules (host names, regexes, exclusive fields) stay with the
model's validation, as Istio keeps them in its webhook and CEL rules.

``controlplane crds`` prints the YAML; ``deploy/kubernetes/crds.yaml`` is its committed output
(a test checks it is up to date).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal, get_args, get_origin

import yaml

from controlplane.model.frozen import FrozenDict
from controlplane.model.registry import KINDS, KindInfo

Schema = dict[str, Any]

# Go's time.ParseDuration syntax, as the model's parse_duration reads it.
DURATION_PATTERN = r"^(0|((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$"
# istioctl's short names.
SHORT_NAMES = {
    "VirtualService": ["vs"],
    "DestinationRule": ["dr"],
    "Gateway": ["gw"],
    "ServiceEntry": ["se"],
    "WorkloadEntry": ["we"],
    "PeerAuthentication": ["pa"],
    "AuthorizationPolicy": ["ap"],
    "RequestAuthentication": ["ra"],
    "Telemetry": ["telemetry"],
}
ISTIO_GROUP_SUFFIX = ".istio.io"


def served_kinds() -> tuple[KindInfo, ...]:
    """The Istio kinds of the model, sorted by group and kind."""
    found = [k for k in KINDS if k.group.endswith(ISTIO_GROUP_SUFFIX)]
    return tuple(sorted(found, key=lambda k: (k.group, k.kind)))


def plural(kind: str) -> str:
    lower = kind.lower()
    return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"


def schema_for(hint: Any, visiting: tuple[type, ...] = ()) -> Schema:
    """The structural OpenAPI schema of one model annotation."""
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is bytes:
        return {"type": "string", "format": "byte"}
    if hint is timedelta:
        return {"type": "string", "pattern": DURATION_PATTERN}
    if hint is object or hint is Any:
        return {"x-kubernetes-preserve-unknown-fields": True}
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return {"type": "string", "enum": [str(a) for a in args]}
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if set(members) == {int, str}:
            return {"x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}]}
        if len(members) == 1:
            return schema_for(members[0], visiting)
        raise TypeError(f"no schema for the union {hint!r}")
    if origin is tuple:
        return {"type": "array", "items": schema_for(args[0], visiting)}
    if origin in (dict, Mapping, FrozenDict) or origin is typing.Mapping:
        return {"type": "object", "additionalProperties": schema_for(args[1], visiting)}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _object_schema(hint, visiting)
    raise TypeError(f"no schema for the annotation {hint!r}")


def _object_schema(cls: type, visiting: tuple[type, ...]) -> Schema:
    if cls in visiting:  # recursive: structural schemas cannot refer back
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    hints = typing.get_type_hints(cls)
    properties: Schema = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        name = f.metadata.get("json", _camel(f.name))
        properties[name] = schema_for(hints[f.name], (*visiting, cls))
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(name)
    schema: Schema = {"type": "object"}
    if properties:
        schema["properties"] = dict(sorted(properties.items()))
    if required:
        schema["required"] = sorted(required)
    if getattr(cls, "LENIENT", False) or not properties:
        schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


def _camel(name: str) -> str:
    from controlplane.model.decode import camel

    return camel(name)


def crd(kind: KindInfo) -> Schema:
    """The CustomResourceDefinition of one kind: every version the model accepts is served,
    the first is stored; status is a subresource the control plane may write."""
    spec_hint = typing.get_type_hints(kind.cls)["spec"]
    spec_schema = schema_for(spec_hint)
    root: Schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    if kind.has_spec:
        root["required"] = ["spec"]
    names: Schema = {
        "kind": kind.doc_kind,
        "listKind": f"{kind.doc_kind}List",
        "plural": plural(kind.doc_kind),
        "singular": kind.doc_kind.lower(),
        "categories": ["istio-io", kind.group.split(".")[0] + "-istio-io"],
    }
    if kind.doc_kind in SHORT_NAMES:
        names["shortNames"] = SHORT_NAMES[kind.doc_kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural(kind.doc_kind)}.{kind.group}",
            "labels": {"app.kubernetes.io/part-of": "controlplane"},
        },
        "spec": {
            "group": kind.group,
            "names": names,
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": index == 0,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                }
                for index, version in enumerate(kind.versions)
            ],
        },
    }


def render() -> str:
    """Every CRD as one multi-document YAML, deterministic."""
    header = (
        "# GENERATED by `controlplane crds` from the model (controlplane/cluster/crds.py).\n"
        "# Do not edit by hand: regenerate with\n"
        "#   controlplane crds > deploy/kubernetes/crds.yaml\n"
    )
    documents = [
        yaml.dump(crd(kind), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        for kind in served_kinds()
    ]
    return header + "---\n" + "---\n".join(documents)


class _Dumper(yaml.SafeDumper):
    """No YAML anchors: every version repeats its schema, as kubectl and other tools expect."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
