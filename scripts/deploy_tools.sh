#!/usr/bin/env bash
# Install the validators of the deployment files (tests/unit/deploy) in .cache/deploy-tools/:
#   bin/kubeconform    Kubernetes manifests against the API's JSON schemas, strict
#                      (github.com/yannh/kubeconform, from the Go module proxy)
#   bin/kustomize      renders deploy/k8s's kustomizations (sigs.k8s.io/kustomize, from the Go
#                      module proxy), so that what `kubectl apply -k` applies is validated too
#   bin/compose-check  docker-compose.yml through compose-go, the loader Docker Compose is
#                      built on (scripts/deploy_tools/compose-check, from the Go module proxy)
#   k8s-schemas/       the schemas of Kubernetes $K8S_VERSION, taken from the kubernetes-validate
#                      wheel on PyPI (scripts/deploy_tools/k8s_schemas.py says why and how)
#   crd-schemas/       the schemas of KEDA's ScaledObject and TriggerAuthentication, converted
#                      from the CRDs in the source of github.com/kedacore/keda/v2 $KEDA_VERSION
#                      (from the Go module proxy, checked against the checksum database;
#                      scripts/deploy_tools/crd_schemas.py)
# Idempotent: a piece is redone only when its version changes; with everything in place it
# returns at once. Needs Go 1.26+ (never downloads a toolchain) and .venv (scripts/setup.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
KUBECONFORM_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.7.1
K8S_VERSION=1.34.0
KV_VERSION=1.37.0  # kubernetes-validate
KV_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
KEDA_VERSION=v2.21.0
dir=.cache/deploy-tools
src=scripts/deploy_tools
python=.venv/bin/python
[ -x "$python" ] || python=python3
mkdir -p "$dir/bin" "$dir/wheels"

say() { echo "deploy_tools.sh: $*" >&2; }
fresh() { [ "$(cat "$dir/$1.stamp" 2>/dev/null)" = "$2" ] && [ -e "$3" ]; }
need_go() {
  command -v go >/dev/null 2>&1 \
    || { say "go not found: Go 1.26+ builds kubeconform and compose-check"; exit 1; }
}
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

want="$KUBECONFORM_VERSION"
if ! fresh kubeconform "$want" "$dir/bin/kubeconform"; then
  need_go; start=$SECONDS
  GOBIN="$root/$dir/bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  echo "$want" > "$dir/kubeconform.stamp"
  say "kubeconform $KUBECONFORM_VERSION installed in $((SECONDS - start)) s"
fi

want="$KUSTOMIZE_VERSION"
if ! fresh kustomize "$want" "$dir/bin/kustomize"; then
  need_go; start=$SECONDS
  GOBIN="$root/$dir/bin" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  echo "$want" > "$dir/kustomize.stamp"
  say "kustomize $KUSTOMIZE_VERSION installed in $((SECONDS - start)) s"
fi

want="$(cat "$src/compose-check/go.mod" "$src/compose-check/go.sum" "$src/compose-check/main.go" | sha256sum | cut -c1-16)"
if ! fresh compose-check "$want" "$dir/bin/compose-check"; then
  need_go; start=$SECONDS
  (cd "$src/compose-check" && go build -trimpath -o "$root/$dir/bin/compose-check" .)
  echo "$want" > "$dir/compose-check.stamp"
  say "compose-check built in $((SECONDS - start)) s"
fi

want="kubernetes-validate $KV_VERSION, Kubernetes $K8S_VERSION, $(sha256sum "$src/k8s_schemas.py" | cut -c1-16)"
if ! fresh k8s-schemas "$want" "$dir/k8s-schemas/_definitions.json"; then
  start=$SECONDS
  wheel="$dir/wheels/kubernetes_validate-$KV_VERSION-py3-none-any.whl"
  if [ "$(sha256sum "$wheel" 2>/dev/null | cut -d' ' -f1)" != "$KV_SHA256" ]; then
    rm -f "$wheel"
    "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$dir/wheels" "kubernetes-validate==$KV_VERSION"
    [ "$(sha256sum "$wheel" | cut -d' ' -f1)" = "$KV_SHA256" ] \
      || { say "$wheel: sha256 is not $KV_SHA256"; rm -f "$wheel"; exit 1; }
  fi
  "$python" "$src/k8s_schemas.py" "$wheel" "$K8S_VERSION" "$dir/k8s-schemas"
  echo "$want" > "$dir/k8s-schemas.stamp"
  say "Kubernetes $K8S_VERSION schemas in $((SECONDS - start)) s"
fi

want="keda $KEDA_VERSION, $(sha256sum "$src/crd_schemas.py" | cut -c1-16)"
if ! fresh crd-schemas "$want" "$dir/crd-schemas/keda.sh/scaledobject_v1alpha1.json"; then
  need_go; start=$SECONDS
  zip="$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" \
    | "$python" -c 'import json, sys; d = json.load(sys.stdin); print(d.get("Zip") or sys.exit(d.get("Error", "no zip")))')" \
    || { say "cannot download github.com/kedacore/keda/v2@$KEDA_VERSION from the Go module proxy"; exit 1; }
  "$python" "$src/crd_schemas.py" "$zip" "$dir/crd-schemas"
  echo "$want" > "$dir/crd-schemas.stamp"
  say "KEDA $KEDA_VERSION CRD schemas in $((SECONDS - start)) s"
fi
