"""EnvoyFilter: Istio's patches on the Envoy config a proxy is sent, applied after the
builders (``apply.py``), one module per applyTo family (``listener.py``: listeners, listener
filters, filter chains, network and HTTP filters; ``route.py``: route configurations, virtual
hosts, routes; ``cluster.py``), with Istio's merge (``merge.py``), values parsed by
``values.py`` and results checked by ``checks.py`` so that a patch never makes a proxy NACK.
"""
