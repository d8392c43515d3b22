#!/usr/bin/env bash
# The e2e environment on kind, for users with Docker:  e2e/kind.sh up|down|status [--dir DIR]
# Writes DIR/kubeconfig (default DIR: .demo/kind), like `python -m e2e.cluster up --dir DIR`.
# KIND_NODE_IMAGE picks the node image (default: kind's own default for its version), e.g. kindest/node:v1.35.0.
set -euo pipefail

cmd=${1:-}
shift || true
dir=.demo/kind
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --dir=*) dir=${1#--dir=}; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
name=vkeci
config="$(cd "$(dirname "$0")/.." && pwd)/kind-config.yaml"
command -v kind >/dev/null || { echo "kind is not installed: https://kind.sigs.k8s.io/docs/user/quick-start/" >&2; exit 1; }

case $cmd in
  up)
    mkdir -p "$dir"
    if kind get clusters 2>/dev/null | grep -qx "$name"; then
      kind export kubeconfig --name "$name" --kubeconfig "$dir/kubeconfig"
    else
      kind create cluster --name "$name" --config "$config" --kubeconfig "$dir/kubeconfig" --wait 120s \
        ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
    fi
    echo "kubeconfig: $dir/kubeconfig"
    ;;
  down)
    kind delete cluster --name "$name"
    rm -f "$dir/kubeconfig"
    ;;
  status)
    kubectl --kubeconfig "$dir/kubeconfig" get --raw /readyz && echo
    ;;
  *)
    echo "usage: $0 up|down|status [--dir DIR]" >&2
    exit 2
    ;;
esac
