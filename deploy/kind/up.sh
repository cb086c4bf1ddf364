#!/usr/bin/env bash
# Bring up a kind cluster running the control plane (3 replicas), its CRDs and injection
# webhook, an ingress gateway, and Bookinfo with the demo's routing; then print how to reach
# it. Needs docker, kind and kubectl. Re-running it updates what is there.
#
#   deploy/kind/up.sh            # KIND_CLUSTER, IMAGE and ISTIO_SAMPLES override the defaults
#   deploy/kind/down.sh          # removes the cluster
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
cluster="${KIND_CLUSTER:-controlplane}"
image="${IMAGE:-controlplane:dev}"
proxy_image="${PROXY_IMAGE:-controlplane/proxy:dev}"
# Bookinfo's workloads and gateway come from Istio's samples at a pinned release.
istio_samples="${ISTIO_SAMPLES:-https://raw.githubusercontent.com/istio/istio/1.24.2/samples}"
namespace=default  # the demo's routing names this namespace

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "up.sh: '$1' is required but not on PATH" >&2
    exit 1
  fi
}
need docker
need kind
need kubectl

step() { printf '\n==> %s\n' "$*"; }

step "kind cluster ${cluster}"
if kind get clusters | grep -qx "${cluster}"; then
  echo "already there"
else
  kind create cluster --name "${cluster}" --config "${here}/cluster.yaml"
fi
kctl() { kubectl --context "kind-${cluster}" "$@"; }

step "images ${image} and ${proxy_image}"
docker build -f "${repo}/deploy/Dockerfile" --target controlplane -t "${image}" "${repo}"
docker build -f "${repo}/deploy/Dockerfile" --target proxy -t "${proxy_image}" "${repo}"
kind load docker-image "${image}" "${proxy_image}" --name "${cluster}"

step "CRDs (generated from the model)"
kctl apply --server-side --force-conflicts -f "${repo}/deploy/kubernetes/crds.yaml"
kctl wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=controlplane

step "control plane"
kctl apply -f "${repo}/deploy/kubernetes/controlplane.yaml"
kctl -n istio-system set image deploy/istiod "discovery=${image}"
if [ "${proxy_image}" != "controlplane/proxy:dev" ]; then
  kctl -n istio-system patch deploy/istiod --type=json -p "[{\"op\": \"add\", \"path\": \"/spec/template/spec/containers/0/args/-\", \"value\": \"--injection-image=${proxy_image}\"}]"
fi
kctl -n istio-system rollout status deploy/istiod --timeout=300s
echo "leader: $(kctl -n istio-system get lease istio-leader -o jsonpath='{.spec.holderIdentity}')"

step "root certificate (published by the leader as istio-ca-root-cert)"
root=""
for _ in $(seq 1 60); do
  root="$(kctl -n istio-system get configmap istio-ca-root-cert \
    -o jsonpath='{.data.root-cert\.pem}' 2>/dev/null || true)"
  if [ -n "${root}" ]; then break; fi
  sleep 2
done
if [ -z "${root}" ]; then
  echo "up.sh: istio-ca-root-cert did not appear in istio-system" >&2
  exit 1
fi

step "injection webhook (the leader sets its caBundle to the root)"
kctl apply -f "${repo}/deploy/kubernetes/webhook.yaml"
ca_bundle="$(printf '%s' "${root}" | base64 | tr -d '\n')"
for _ in $(seq 1 60); do
  current="$(kctl get mutatingwebhookconfiguration istio-sidecar-injector \
    -o jsonpath='{.webhooks[0].clientConfig.caBundle}' 2>/dev/null || true)"
  if [ "${current}" = "${ca_bundle}" ]; then break; fi
  sleep 2
done
if [ "${current}" != "${ca_bundle}" ]; then
  echo "up.sh: the leader did not set the webhook's caBundle to the root" >&2
  exit 1
fi

step "ingress gateway"
kctl apply -f "${here}/ingress-gateway.yaml"
kctl -n istio-system set image deploy/istio-ingressgateway "bootstrap=${image}"
kctl -n istio-system rollout status deploy/istio-ingressgateway --timeout=300s

step "Bookinfo in ${namespace} (injection on), with the demo's routing"
kctl label namespace "${namespace}" istio-injection=enabled --overwrite
kctl apply -n "${namespace}" -f "${istio_samples}/bookinfo/platform/kube/bookinfo.yaml"
kctl apply -n "${namespace}" -f "${istio_samples}/bookinfo/networking/bookinfo-gateway.yaml"
kctl apply -f "${repo}/controlplane/demo/config/base/destination-rules.yaml"
kctl apply -f "${repo}/controlplane/demo/config/phases/1-all-v1/"
for deployment in details-v1 ratings-v1 reviews-v1 reviews-v2 reviews-v3 productpage-v1; do
  kctl -n "${namespace}" rollout status "deploy/${deployment}" --timeout=300s
done

cat <<DONE

Bookinfo is up behind the ingress gateway (NodePort 30080, mapped to this host's 8080):

  curl -s http://localhost:8080/productpage | grep -o '<title>.*</title>'

The control plane: kubectl --context kind-${cluster} -n istio-system get pods,lease
Its debug port stays inside each pod:
  kubectl --context kind-${cluster} -n istio-system port-forward deploy/istiod 15014
  curl localhost:15014/debug/syncz
Change the routing with the demo's phases, e.g.:
  kubectl --context kind-${cluster} apply -f ${repo}/controlplane/demo/config/phases/2-jason/
Remove everything: ${here}/down.sh
DONE
