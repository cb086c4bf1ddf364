"""Cross-reference checks between resources, like ``istioctl analyze`` (all warnings).

They read the validated documents in their API form (the dicts the model accepted),
so field paths in messages are the ones users see in their YAML.

- a VirtualService routes to a host no Service or ServiceEntry defines, or to a
  subset no DestinationRule for that host defines;
- a VirtualService names a Gateway that does not exist;
- a Gateway no VirtualService references;
- a root VirtualService delegates to a VirtualService that is missing, has hosts, or is
  not exported to the root's namespace; a delegate route whose match does not fall within
  the root route's (Istio drops all of these, silently);
- a DestinationRule subset that selects no workload of its service, checked only
  when that service's workloads are known (Pods, WorkloadEntries, or the pod
  templates of Deployments and the like in the same input);
- an EndpointSlice endpoint whose targetRef names a Pod the input does not hold: as in
  Istio, it is left out until that Pod exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from controlplane.analysis.inputs import Inputs
from controlplane.analysis.workloads import workloads_of
from controlplane.model.base import Origin
from controlplane.model.hosts import (
    DEFAULT_DOMAIN_SUFFIX,
    host_matches,
    normalize_host,
    resolve_short_name,
    service_fqdn,
)
from controlplane.model.labels import selector_matches
from controlplane.model.virtual_service import VirtualService
from controlplane.sources.diagnostics import WARNING, Diagnostic
from controlplane.sources.parsing import Parsed
from controlplane.translate.index import delegation


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(value).items()}


def _namespace(parsed: Parsed) -> str:
    return parsed.key.namespace if parsed.key is not None else ""


def _warn(parsed: Parsed, path: str, message: str) -> Diagnostic:
    document = parsed.document
    return Diagnostic(
        Origin(document.origin.file, document.line_of(path)), parsed.key, path, message, WARNING
    )


class CrossReferences:
    def __init__(self, inputs: Inputs, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> None:
        self.inputs = inputs
        self.domain_suffix = domain_suffix
        self.services = {
            service_fqdn(p.key.name, p.key.namespace, domain_suffix): p
            for p in inputs.valid("Service")
            if p.key
        }
        self.service_entries = inputs.valid("ServiceEntry")
        self.destination_rules = inputs.valid("DestinationRule")
        self.virtual_services = inputs.valid("VirtualService")
        self.gateways = {(p.key.namespace, p.key.name): p for p in inputs.valid("Gateway") if p.key}
        self.workloads = workloads_of(inputs)

    # --- inputs ----------------------------------------------------------------------
    def _resolve(self, host: str, namespace: str) -> str:
        resolved = resolve_short_name(host, namespace, self.domain_suffix)
        # "reviews.prod" and "reviews.prod.svc" name a Service too, for users if not for Istio.
        host = normalize_host(host)
        for candidate in (resolved, f"{host}.svc.{self.domain_suffix}", f"{host}.{self.domain_suffix}"):
            if candidate in self.services:
                return candidate
        return resolved

    def _host_defined(self, host: str) -> bool:
        if host in self.services:
            return True
        for entry in self.service_entries:
            for pattern in _list(_dict(entry.document.body.get("spec")).get("hosts")):
                if isinstance(pattern, str) and host_matches(pattern, host):
                    return True
        return False

    def _rules_for(self, host: str) -> list[Parsed]:
        out = []
        for rule in self.destination_rules:
            rule_host = _dict(rule.document.body.get("spec")).get("host")
            if isinstance(rule_host, str) and host_matches(
                self._resolve(rule_host, _namespace(rule)), host
            ):
                out.append(rule)
        return out

    # --- checks --------------------------------------------------------------------------
    def check(self) -> list[Diagnostic]:
        return [
            *self.check_destinations(),
            *self.check_gateway_references(),
            *self.check_subsets_select_workloads(),
            *self.check_delegates(),
            *self.check_endpoint_pods(),
        ]

    def check_endpoint_pods(self) -> Iterator[Diagnostic]:
        pods = {(p.key.namespace, p.key.name) for p in self.inputs.valid("Pod") if p.key}
        for parsed in self.inputs.valid("EndpointSlice"):
            namespace = _namespace(parsed)
            for index, endpoint in enumerate(_list(parsed.document.body.get("endpoints"))):
                ref = _dict(_dict(endpoint).get("targetRef"))
                if ref.get("kind") != "Pod" or not ref.get("name"):
                    continue
                pod = (str(ref.get("namespace") or namespace), str(ref["name"]))
                if pod not in pods:
                    yield _warn(parsed, f"endpoints[{index}].targetRef",
                                f"names Pod {pod[0]}/{pod[1]}, which is not in the input: the endpoint is left "
                                "out until the Pod exists, as Istio does (add the Pod, or drop the targetRef)")

    def _destinations(self, spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        for section in ("http", "tcp", "tls"):
            for i, route in enumerate(_list(spec.get(section))):
                route = _dict(route)
                for j, target in enumerate(_list(route.get("route"))):
                    yield (
                        f"spec.{section}[{i}].route[{j}].destination",
                        _dict(_dict(target).get("destination")),
                    )
                if "mirror" in route:
                    yield f"spec.{section}[{i}].mirror", _dict(route.get("mirror"))
                for j, mirror in enumerate(_list(route.get("mirrors"))):
                    yield (
                        f"spec.{section}[{i}].mirrors[{j}].destination",
                        _dict(_dict(mirror).get("destination")),
                    )

    def check_destinations(self) -> Iterator[Diagnostic]:
        for vs in self.virtual_services:
            namespace = _namespace(vs)
            for path, destination in self._destinations(_dict(vs.document.body.get("spec"))):
                raw_host = destination.get("host")
                if not isinstance(raw_host, str) or not raw_host:
                    continue
                host = self._resolve(raw_host, namespace)
                if not self._host_defined(host):
                    yield _warn(
                        vs,
                        f"{path}.host",
                        f'host "{raw_host}" ({host}) is not defined by any Service or ServiceEntry',
                    )
                subset = destination.get("subset")
                if not isinstance(subset, str) or not subset:
                    continue
                rules = self._rules_for(host)
                names = {
                    _dict(s).get("name")
                    for rule in rules
                    for s in _list(_dict(rule.document.body.get("spec")).get("subsets"))
                }
                if not rules:
                    yield _warn(
                        vs,
                        f"{path}.subset",
                        f'subset "{subset}": no DestinationRule defines subsets for host {host}',
                    )
                elif subset not in names:
                    owners = ", ".join(f"{r.key.namespace}/{r.key.name}" for r in rules if r.key)
                    yield _warn(
                        vs,
                        f"{path}.subset",
                        f'subset "{subset}" is not defined by DestinationRule {owners}',
                    )

    def _gateway_refs(self, vs: Parsed) -> Iterator[tuple[str, str]]:
        spec = _dict(vs.document.body.get("spec"))
        yield from (("spec.gateways", g) for g in _list(spec.get("gateways")))
        for section in ("http", "tcp", "tls"):
            for i, route in enumerate(_list(spec.get(section))):
                for j, match in enumerate(_list(_dict(route).get("match"))):
                    for g in _list(_dict(match).get("gateways")):
                        yield f"spec.{section}[{i}].match[{j}].gateways", g

    def _gateway_key(self, ref: str, namespace: str) -> tuple[str, str]:
        if "/" in ref:
            ns, _, name = ref.partition("/")
            return ns, name
        if "." in ref:  # legacy "name.namespace.svc.cluster.local"
            name, _, rest = ref.partition(".")
            return rest.split(".", 1)[0], name
        return namespace, ref

    def check_gateway_references(self) -> Iterator[Diagnostic]:
        referenced: set[tuple[str, str]] = set()
        for vs in self.virtual_services:
            for path, ref in self._gateway_refs(vs):
                if not isinstance(ref, str) or ref == "mesh":
                    continue
                key = self._gateway_key(ref, _namespace(vs))
                referenced.add(key)
                if key not in self.gateways:
                    yield _warn(vs, path, f'gateway "{ref}" ({key[0]}/{key[1]}) is not defined')
        for key, gateway in sorted(self.gateways.items()):
            if key not in referenced:
                yield _warn(
                    gateway, "metadata.name", "the Gateway is not referenced by any VirtualService"
                )

    def check_subsets_select_workloads(self) -> Iterator[Diagnostic]:
        if not self.workloads:
            return
        for rule in self.destination_rules:
            spec = _dict(rule.document.body.get("spec"))
            host = spec.get("host")
            if not isinstance(host, str):
                continue
            service = self.services.get(self._resolve(host, _namespace(rule)))
            if service is None:
                continue
            selector = _labels(_dict(service.document.body.get("spec")).get("selector"))
            namespace = _namespace(service)
            backing = [
                w
                for w in self.workloads
                if w.namespace == namespace and selector and selector_matches(selector, w.labels)
            ]
            if not backing:
                continue  # this service's workloads are not in the input: nothing to say
            for i, subset in enumerate(_list(spec.get("subsets"))):
                labels = _labels(_dict(subset).get("labels"))
                if labels and not any(selector_matches(labels, w.labels) for w in backing):
                    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
                    name = _dict(subset).get("name")
                    yield _warn(
                        rule,
                        f"spec.subsets[{i}].labels",
                        f'subset "{name}" ({shown}) selects no workload of service {service.key.name if service.key else host}',
                    )

    def check_delegates(self) -> Iterator[Diagnostic]:
        by_key = {(p.key.namespace, p.key.name): p for p in self.virtual_services if p.key}
        models = {key: p.resource for key, p in by_key.items() if isinstance(p.resource, VirtualService)}
        for parsed in self.virtual_services:
            root = parsed.resource
            if not isinstance(root, VirtualService) or not root.spec.hosts:
                continue
            for i, route in enumerate(root.spec.http):
                if route.delegate is None:
                    continue
                found = delegation.find_delegate(root, route, models)
                if found.delegate is None:
                    yield _warn(parsed, f"spec.http[{i}].delegate", f"{found.problem}: this route is ignored")
                    continue
                merged = delegation.delegated_routes(root, route, found.delegate, self.domain_suffix)
                for j, result in enumerate(merged):
                    if result is None:
                        yield _warn(
                            by_key[(found.namespace, found.name)],
                            f"spec.http[{j}].match",
                            f"no match falls within the match of VirtualService {_namespace(parsed)}/"
                            f"{root.meta.name} spec.http[{i}], which delegates here: this route is ignored there",
                        )
