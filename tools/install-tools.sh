#!/usr/bin/env bash
# Builds helm and kubeconform from the Go module proxy (`go install module/cmd@version`) into a
# cache folder outside the repo, next to the test bed's control-plane binaries, keyed by version.
# Usage: tools/install-tools.sh [helm] [kubeconform]   (default: both)
# Prints the bin folder on its last line. Idempotent: a binary already in the cache is kept.
# GOTOOLCHAIN=local: the Go on this machine builds them; nothing is downloaded but modules.
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.22.0}
KUBECONFORM_VERSION=${KUBECONFORM_VERSION:-v0.8.0}
cache=${DBMIGRATE_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dbmigrate-testbed}
bin="$cache/tools-helm-$HELM_VERSION-kubeconform-$KUBECONFORM_VERSION/bin"
mkdir -p "$bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
# helm's own Makefile stamps its version and the Kubernetes version of its client-go (used as the
# default capabilities of `helm install --dry-run` and of lint); without them helm says v1.20.
HELM_KUBE_MINOR=${HELM_KUBE_MINOR:-37}  # helm v3.22.0 requires k8s.io/client-go v0.37
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_KUBE_MINOR"
done
install() {  # name module-path/cmd version [ldflags]
  local name=$1 pkg=$2 version=$3 flags=${4:-} start
  if [ -x "$bin/$name" ]; then return 0; fi
  start=$(date +%s)
  echo "building $name $version ($pkg) into $bin" >&2
  GOBIN="$bin" go install -trimpath -ldflags "-s -w $flags" "$pkg@$version"
  echo "built $name in $(( $(date +%s) - start )) s" >&2
}
targets=${*:-helm kubeconform}
for t in $targets; do
  case $t in
    helm) install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$helm_ldflags" ;;
    kubeconform) install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" ;;
    *) echo "unknown target $t (helm, kubeconform)" >&2; exit 2 ;;
  esac
done
echo "$bin"
