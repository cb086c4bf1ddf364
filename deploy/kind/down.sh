#!/usr/bin/env bash
# Delete the kind cluster that up.sh created (and everything in it).
set -euo pipefail

cluster="${KIND_CLUSTER:-controlplane}"
if ! command -v kind >/dev/null 2>&1; then
  echo "down.sh: 'kind' is required but not on PATH" >&2
  exit 1
fi
if kind get clusters | grep -qx "${cluster}"; then
  kind delete cluster --name "${cluster}"
else
  echo "no kind cluster named ${cluster}"
fi
