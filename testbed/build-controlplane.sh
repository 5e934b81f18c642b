#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, etcd and kubectl (the test bed), and on request
# kubelet, kubeadm, kube-scheduler and kube-proxy (the kind tier's node), from the pinned Go
# modules in tools/ into a cache outside the repo, keyed by version. Prints the bin folder on its
# last line (`--print-bin` prints only that). Idempotent: a cached binary is not rebuilt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
cache=${DBMIGRATE_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dbmigrate-testbed}
bin="$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/bin"
if [ "${1:-}" = --print-bin ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
build() {  # name package [ldflags]
  local name=$1 pkg=$2 flags=${3:-}
  if [ -x "$bin/$name" ]; then return 0; fi
  echo "building $name ($pkg) into $bin" >&2
  (cd "$here/tools" && go build -trimpath -ldflags "-s -w $flags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
}
targets=${*:-etcd kube-apiserver kube-controller-manager kubectl}
for t in $targets; do
  case $t in
    etcd) build etcd go.etcd.io/etcd/server/v3 ;;
    kube-apiserver) build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$ldflags" ;;
    kube-controller-manager) build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$ldflags" ;;
    kubectl|kubelet|kubeadm|kube-scheduler|kube-proxy) build "$t" "k8s.io/kubernetes/cmd/$t" "$ldflags" ;;
    *) echo "unknown target $t (etcd, kube-apiserver, kube-controller-manager, kubectl," \
         "kubelet, kubeadm, kube-scheduler, kube-proxy)" >&2; exit 2 ;;
  esac
done
echo "$bin"
