"""A small rate limit service (``controlplane ratelimit``) speaking Envoy's RLS gRPC API
(``envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit``), configured with
envoyproxy/ratelimit's descriptor YAML (``config.py``), counting fixed windows per unit in
Redis or in memory (``counters.py``); ``service.py`` decides, ``server.py`` serves.
"""
