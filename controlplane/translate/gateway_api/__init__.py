"""The Kubernetes Gateway API converted as Istio converts it: Gateway API objects in, Istio
``Gateway`` and ``VirtualService`` models (never stored; the translator consumes them like
user-written ones) and the status conditions Istio writes, out.

``convert(inputs_from_snapshot(snapshot, domain_suffix)) -> ConvertedConfig``.

Modules, one concern each: ``inputs`` (what is read), ``references`` (ReferenceGrant),
``gateways`` (Gateways and listeners), ``tls`` (listener TLS and certificateRefs), ``http`` (HTTPRoute/GRPCRoute rules, backends),
``parents`` (route binding and route status), ``routes`` (VirtualServices), ``status``
(conditions as data), ``convert`` (the entry point).
"""

from __future__ import annotations

from controlplane.translate.gateway_api.convert import EMPTY, ConvertedConfig, convert
from controlplane.translate.gateway_api.inputs import (
    INPUT_KINDS,
    ConversionInputs,
    inputs_from_snapshot,
)
from controlplane.translate.gateway_api.status import Condition, ObjectStatus

__all__ = [
    "EMPTY",
    "INPUT_KINDS",
    "Condition",
    "ConversionInputs",
    "ConvertedConfig",
    "ObjectStatus",
    "convert",
    "inputs_from_snapshot",
]
