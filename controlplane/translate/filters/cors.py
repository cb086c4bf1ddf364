"""CORS (VirtualService ``corsPolicy``): Envoy's CORS filter, configured per route."""

from __future__ import annotations

from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.model.virtual_service import CorsPolicy, HTTPRoute
from controlplane.translate.filters.base import CORS, FilterSite, HttpFilter
from controlplane.translate.http_route_match import string_matcher

CORS_FILTER = "envoy.filters.http.cors"


def cors_policy(cors: CorsPolicy | None) -> cors_pb2.CorsPolicy | None:
    if cors is None:
        return None
    out = cors_pb2.CorsPolicy()
    for m in cors.allow_origins:
        sm = string_matcher(m)
        if sm is not None:
            out.allow_origin_string_match.append(sm)
    for origin in cors.allow_origin:
        out.allow_origin_string_match.add(exact=origin)
    if cors.allow_methods:
        out.allow_methods = ",".join(cors.allow_methods)
    if cors.allow_headers:
        out.allow_headers = ",".join(cors.allow_headers)
    if cors.expose_headers:
        out.expose_headers = ",".join(cors.expose_headers)
    if cors.max_age is not None:
        out.max_age = str(int(cors.max_age.total_seconds()))
    if cors.allow_credentials is not None:
        out.allow_credentials.value = cors.allow_credentials
    if cors.unmatched_preflights == "IGNORE":
        out.forward_not_matching_preflights.value = False
    return out


class Cors(HttpFilter):
    name = CORS_FILTER
    position = CORS

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter:
        return self.entry(cors_pb2.Cors())

    def per_route(self, http: HTTPRoute) -> cors_pb2.CorsPolicy | None:
        return cors_policy(http.cors_policy)


FILTER = Cors()
