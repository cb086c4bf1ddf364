"""Running as replicas in a Kubernetes cluster: leader election on a Lease, the CA root in a
Secret, the root published as ConfigMaps, and the CRDs generated from the model."""
