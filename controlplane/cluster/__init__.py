"""Running as replicas in a Kubernetes cluster: leader election on a Lease, the CA root in a
Secret, the CRDs generated from the model, and the leader-only workers (``worker.py``): the
root published as ConfigMaps, the webhook's caBundle, the Gateway API status."""
