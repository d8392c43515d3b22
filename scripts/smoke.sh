#!/usr/bin/env bash
# Smoke test of a running vk-eci against any cluster (the demo, kind, or a real cluster with real ECI):
# an nginx Deployment of 3 replicas on the virtual node must roll out with pod IPs, then scale to 0.
#
#   scripts/smoke.sh --kubeconfig K [--node NAME] [--kubectl PATH] [--timeout SECONDS] [--keep]
#
# Exit status 0 when everything worked; the namespace it creates (vkeci-smoke-*) is deleted unless --keep.
set -euo pipefail

KUBECONFIG_ARG="${KUBECONFIG:-}"
NODE=""
KUBECTL="${KUBECTL:-kubectl}"
TIMEOUT=180
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --kubeconfig) KUBECONFIG_ARG="$2"; shift 2 ;;
    --node) NODE="$2"; shift 2 ;;
    --kubectl) KUBECTL="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "smoke: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$KUBECONFIG_ARG" ] || { echo "smoke: give --kubeconfig (or set KUBECONFIG)" >&2; exit 2; }
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_ARG" "$@"; }

if [ -z "$NODE" ]; then
  NODE="$(k get nodes -l type=virtual-kubelet -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)"
  [ -n "$NODE" ] || { echo "smoke: no node labelled type=virtual-kubelet; is vkeci running? (or pass --node)" >&2; exit 1; }
fi
READY="$(k get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')"
[ "$READY" = "True" ] || { echo "smoke: node $NODE is not Ready (Ready=$READY)" >&2; exit 1; }
echo "smoke: node $NODE is Ready"

NS="vkeci-smoke-$(date +%s)"
cleanup() { [ "$KEEP" = 1 ] || k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT
k create namespace "$NS" >/dev/null
cat <<YAML | k apply -n "$NS" -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx}
spec:
  replicas: 3
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      nodeSelector: {type: virtual-kubelet, kubernetes.io/hostname: "$NODE"}
      tolerations: [{key: virtual-kubelet.io/provider, operator: Exists, effect: NoSchedule}]
      containers: [{name: nginx, image: "nginx:1.27", ports: [{containerPort: 80}]}]
YAML
start=$(date +%s)
k rollout status -n "$NS" deployment/nginx --timeout="${TIMEOUT}s"
echo "smoke: 3 replicas rolled out in $(( $(date +%s) - start ))s"
k get pods -n "$NS" -o wide
IPS="$(k get pods -n "$NS" -l app=nginx -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}' | grep -c . || true)"
[ "$IPS" = 3 ] || { echo "smoke: expected 3 pod IPs, got $IPS" >&2; exit 1; }
IDS="$(k get pods -n "$NS" -l app=nginx -o jsonpath='{range .items[*]}{.metadata.annotations.k8s\.aliyun\.com/eci-instance-id}{"\n"}{end}' | grep -c . || true)"
[ "$IDS" = 3 ] || { echo "smoke: expected 3 k8s.aliyun.com/eci-instance-id annotations, got $IDS" >&2; exit 1; }
k scale -n "$NS" deployment/nginx --replicas=0 >/dev/null
deadline=$(( $(date +%s) + TIMEOUT ))
while [ -n "$(k get pods -n "$NS" -l app=nginx -o name)" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "smoke: pods not gone after scale to 0" >&2; exit 1; }
  sleep 2
done
echo "smoke: scaled to 0, all pods gone: OK"
