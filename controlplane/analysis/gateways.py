"""Gateway checks, like ``istioctl analyze`` (warnings):

- a server's ``credentialName`` names a Secret the gateway cannot read: Istio serves a
  gateway only the Secrets of its own namespace, the namespace of the workloads the Gateway
  selects (when none is in the input, a Secret of that name in any namespace will do);
- two Gateways for the same workloads claim one port and host (Istio's conflicting-gateway
  analyzer): the later one's server is dropped, as the translation's merge decides.

A Gateway selecting no workload is not reported: gateway deployments are seldom in the
analyzed folder (Istio installs them).

A VirtualService naming a Gateway that does not exist is a cross-reference check
(crossref.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from controlplane.analysis.inputs import Inputs
from controlplane.analysis.workloads import Workload
from controlplane.model.base import Origin
from controlplane.model.gateway import Gateway
from controlplane.model.labels import selector_matches
from controlplane.sources.diagnostics import WARNING, Diagnostic
from controlplane.sources.parsing import Parsed
from controlplane.translate.credentials import CA_SUFFIX
from controlplane.translate.index.gateways import GatewayIndex, build_gateway_index


def _warn(parsed: Parsed, path: str, message: str) -> Diagnostic:
    document = parsed.document
    return Diagnostic(Origin(document.origin.file, document.line_of(path)), parsed.key, path, message, WARNING)


class GatewayChecks:
    def __init__(self, inputs: Inputs, workloads: list[Workload] | tuple[Workload, ...]) -> None:
        self.parsed = {(p.key.namespace, p.key.name): p for p in inputs.valid(Gateway.KIND) if p.key}
        self.secrets = {(p.key.namespace, p.key.name) for p in inputs.valid("Secret") if p.key}
        self.workloads = tuple(workloads)

    def check(self) -> list[Diagnostic]:
        return [*self.check_credentials(), *self.check_conflicts()]

    def _selected(self, gateway: Gateway) -> list[Workload]:
        return [w for w in self.workloads if selector_matches(gateway.spec.selector, w.labels)]

    def check_credentials(self) -> Iterator[Diagnostic]:
        for _, parsed in sorted(self.parsed.items()):
            gateway = parsed.resource
            assert isinstance(gateway, Gateway)
            # Where the gateway runs; unknown when its workloads are not in the input.
            namespaces = sorted({w.namespace for w in self._selected(gateway)})
            for index, server in enumerate(gateway.spec.servers):
                tls = server.tls
                if tls is None or tls.mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL"):
                    continue
                # (field, the Secret named, the Secrets that would do)
                names: list[tuple[str, str, tuple[str, ...]]] = [
                    (f"spec.servers[{index}].tls.credentialName", tls.credential_name, (tls.credential_name,))
                ] if tls.credential_name else []
                names += [(f"spec.servers[{index}].tls.credentialNames[{i}]", n, (n,))
                          for i, n in enumerate(tls.credential_names)]
                ca = tls.ca_cert_credential_name.removesuffix(CA_SUFFIX)
                if ca and "://" not in ca and tls.mode in ("MUTUAL", "OPTIONAL_MUTUAL"):
                    # the CA comes from Secret <name>-cacert, else from <name>'s ca.crt
                    names.append((f"spec.servers[{index}].tls.caCertCredentialName", ca, (ca + CA_SUFFIX, ca)))
                for path, name, usable in names:
                    if namespaces:
                        missing = [ns for ns in namespaces if not any((ns, u) in self.secrets for u in usable)]
                        if missing:
                            yield _warn(parsed, path, f'Secret "{name}" not found in namespace {", ".join(missing)} '
                                                      "of the gateway workloads (a gateway reads only its own "
                                                      "namespace's Secrets)")
                    elif not any(n in usable for _, n in self.secrets):
                        yield _warn(parsed, path, f'Secret "{name}" not found (it must be in the namespace of the '
                                                  "gateway workloads)")

    def check_conflicts(self) -> Iterator[Diagnostic]:
        gateways = [p.resource for p in self.parsed.values() if isinstance(p.resource, Gateway)]
        index: GatewayIndex = build_gateway_index(gateways, ())
        for conflict in index.conflicts():
            namespace, _, name = conflict.gateway.partition("/")
            parsed = self.parsed.get((namespace, name))
            if parsed is not None:
                yield _warn(parsed, f"spec.servers[{conflict.index}]",
                            f"conflicts with another Gateway and is dropped: {conflict.message}")
