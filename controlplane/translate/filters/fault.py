"""Fault injection (VirtualService ``fault``): Envoy's fault filter, configured per route.

The filter sits on every HTTP chain with an empty config, so a route's fault applies
wherever the route is used.
"""

from __future__ import annotations

from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.model.virtual_service import HTTPFaultInjection, HTTPRoute
from controlplane.translate.filters.base import FAULT, FilterSite, HttpFilter
from controlplane.translate.http_features import fractional, percent_value
from controlplane.translate.pb import duration

FAULT_FILTER = "envoy.filters.http.fault"


_GRPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}


def fault_config(fault: HTTPFaultInjection | None) -> fault_pb2.HTTPFault | None:
    if fault is None or (fault.delay is None and fault.abort is None):
        return None
    out = fault_pb2.HTTPFault()
    d = fault.delay
    if d is not None and d.fixed_delay is not None:
        out.delay.fixed_delay.CopyFrom(duration(d.fixed_delay))
        out.delay.percentage.CopyFrom(fractional(percent_value(d.percentage, d.percent)))
    elif d is not None and d.exponential_delay is not None:  # Envoy has no exponential delay
        out.delay.fixed_delay.CopyFrom(duration(d.exponential_delay))
        out.delay.percentage.CopyFrom(fractional(percent_value(d.percentage, d.percent)))
    a = fault.abort
    if a is not None:
        if a.http_status is not None:
            out.abort.http_status = a.http_status
        elif a.grpc_status is not None:
            out.abort.grpc_status = _GRPC_CODES.get(a.grpc_status.upper(), 2)
        else:
            out.abort.http_status = 503
        out.abort.percentage.CopyFrom(fractional(percent_value(a.percentage, None)))
    return out


class Fault(HttpFilter):
    name = FAULT_FILTER
    position = FAULT

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter:
        return self.entry(fault_pb2.HTTPFault())

    def per_route(self, http: HTTPRoute) -> fault_pb2.HTTPFault | None:
        return fault_config(http.fault)


FILTER = Fault()
