"""``controlplane demo``: a Bookinfo-like mesh of real Envoy sidecars on one machine.

apps.py (the workloads), supervisor.py (processes), topology.py (addresses from the
YAML in config/), mesh.py (bring-up), traffic.py and stats.py (measurement),
propagation.py (has every sidecar got the change?), phases.py (the tour),
view.py (rich), tour.py (all of it in order). See README.md.
"""
