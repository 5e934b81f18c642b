# The kind tier's pinned versions and image names; sourced by build-images.sh, read by
# testbed/kindcluster.py. Changing one rebuilds what depends on it.
K8S_VERSION=v1.34.4            # the test bed's Kubernetes (testbed/tools/go.mod)
KIND_VERSION=v0.33.0           # sigs.k8s.io/kind
COREDNS_VERSION=v1.12.1        # github.com/coredns/coredns, the version kubeadm v1.34 deploys
COREDNS_TAG=v1.12.1
ETCD_TAG=3.6.5-0               # the tag kubeadm v1.34 asks for (the binary is the test bed's etcd)
PAUSE_TAG=3.10.1
LOCAL_PATH_VERSION=v0.0.30     # github.com/rancher/local-path-provisioner
DEBIAN_SUITE=bookworm          # Python 3.11 and PostgreSQL 15, as the project targets
BASE_IMAGE=dbmigrate-kind/base:$DEBIAN_SUITE
BUNDLE_IMAGE=dbmigrate-kind/cluster-tools:$K8S_VERSION
PAUSE_IMAGE=dbmigrate-kind/pause:$PAUSE_TAG
# The node image's tag also names the files laid into it, so that a change to one rebuilds it.
NODE_INPUTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" \
  && cat versions.sh cni.yaml storage.yaml kubelet-cgroups.sh | sha256sum | cut -c1-10)
NODE_IMAGE=dbmigrate-kind/node:$K8S_VERSION-$NODE_INPUTS
TOOLS_KEY=kind-$KIND_VERSION-coredns-$COREDNS_VERSION-local-path-$LOCAL_PATH_VERSION
PROJECT_IMAGE=dbmigrate:kind
MIGRATIONS_IMAGE=dbmigrate:kind-migrations   # the project image with database/migrations at /migrations
