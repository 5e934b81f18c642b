#!/usr/bin/env bash
# Builds, without any image registry, everything the kind tier needs, each step cached:
#   - Docker from Debian's packages (started here if no daemon answers), with a runc wrapper
#     when this host's capability bounding set lacks one that `--privileged` asks for;
#   - kind (sigs.k8s.io/kind), CoreDNS and local-path-provisioner from the Go module proxy;
#     kubelet, kubeadm, kube-scheduler, kube-proxy from the test bed's pinned tools module;
#   - two Debian root filesystems (debootstrap): a kind node, and a base for every image the
#     cluster runs (Kubernetes' own, CoreDNS, the CNI, storage, PostgreSQL, dbmigrate);
#   - the node image (Kubernetes images preloaded into its containerd) and the project's image
#     from the repository's Dockerfile, built on the local base.
# Binaries and root filesystems are cached outside the repo, keyed by version; images live in
# Docker and are rebuilt only when missing. Prints nothing on stdout but the final image names.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.sh
. "$here/versions.sh"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH   # Debian's docker client, matching its daemon
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
cache=${DBMIGRATE_KIND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dbmigrate-kind}
bin="$cache/$TOOLS_KEY/bin"   # keyed by the versions it holds
mkdir -p "$bin"
log() { echo "[kind-build $(date +%H:%M:%S)] $*" >&2; }
die() { echo "kind-build: $*" >&2; exit 1; }

# --- Docker ---------------------------------------------------------------------------------
docker_ready() {
  local pkgs=()
  command -v dockerd >/dev/null || pkgs+=(docker.io)
  command -v iptables >/dev/null || pkgs+=(iptables)
  command -v debootstrap >/dev/null || pkgs+=(debootstrap)
  if [ ${#pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${pkgs[*]}: install them (apt-get install ${pkgs[*]}) or run as root"
    log "installing ${pkgs[*]} from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
  fi
  if docker info >/dev/null 2>&1; then return 0; fi
  [ "$(id -u)" = 0 ] || die "no Docker daemon answers on /var/run/docker.sock and only root may start one here: start dockerd (or run as root)"
  local bounding
  bounding=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
  if (( (16#$bounding >> 24 & 1) == 0 )); then
    # CAP_SYS_RESOURCE is not in this host's bounding set: every --privileged container fails
    # in runc unless the capability is taken out of its spec first.
    install -m 0755 "$here/runc-nosysres" /usr/local/sbin/runc-nosysres
    mkdir -p /etc/docker
    echo '{"runtimes":{"nosysres":{"path":"/usr/local/sbin/runc-nosysres"}},"default-runtime":"nosysres"}' \
      > /etc/docker/daemon.json
    log "this host lacks CAP_SYS_RESOURCE: docker runs containers through runc-nosysres"
  fi
  log "starting dockerd (log: $cache/dockerd.log)"
  nohup setsid dockerd >"$cache/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  die "dockerd did not answer within 60 s; see $cache/dockerd.log"
}

# --- Go binaries ----------------------------------------------------------------------------
go_install() {  # name module@version
  local name=$1 target=$2
  [ -x "$bin/$name" ] && return 0
  log "building $name from $target"
  GOBIN="$bin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$target"
}

go_binaries() {
  go_install kind "sigs.k8s.io/kind@$KIND_VERSION"
  go_install coredns "github.com/coredns/coredns@$COREDNS_VERSION"
  go_install local-path-provisioner "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
  if [ ! -x "$bin/pause" ]; then
    (cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/pause" .)
  fi
  # kubelet, kubeadm, kube-scheduler and kube-proxy: the test bed's pinned Kubernetes.
  k8s_bin=$("$repo/testbed/build-controlplane.sh" etcd kube-apiserver kube-controller-manager \
    kubectl kubelet kubeadm kube-scheduler kube-proxy | tail -n 1)
}
k8s_bin=$("$repo/testbed/build-controlplane.sh" --print-bin)

# --- root filesystems -----------------------------------------------------------------------
mirror() { sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1; }

debootstrap_to() {  # dir packages
  local dir=$1 include=$2 url
  [ -f "$dir/.done" ] && return 0
  url=$(mirror); url=${url:-http://deb.debian.org/debian}
  log "debootstrap $DEBIAN_SUITE into $dir"
  rm -rf "$dir" && mkdir -p "$dir" "$cache/debs"
  debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$include" \
    "$DEBIAN_SUITE" "$dir" "$url" >"$dir.log" 2>&1 || die "debootstrap failed; see $dir.log"
  # Trust what the host trusts (a TLS-inspecting egress proxy's CA, say) in local images.
  cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$dir" update-ca-certificates >/dev/null 2>&1 || true
  rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*
  touch "$dir/.done"
}

NODE_PACKAGES=systemd,systemd-sysv,dbus,containerd,runc,iptables,nftables,conntrack,socat,ethtool,kmod,mount,util-linux,ca-certificates,containernetworking-plugins,procps,iproute2,libseccomp2,jq,curl,bash,e2fsprogs
BASE_PACKAGES=ca-certificates,python3,python3-venv,postgresql-15,postgresql-client-15,iptables,conntrack,iproute2,procps,bash,util-linux

# --- images ---------------------------------------------------------------------------------
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

base_image() {
  have_image "$BASE_IMAGE" && return 0
  debootstrap_to "$cache/rootfs-base-$DEBIAN_SUITE" "$BASE_PACKAGES"
  log "importing $BASE_IMAGE"
  tar -C "$cache/rootfs-base-$DEBIAN_SUITE" --exclude=./.done -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
}

cluster_images() {  # every image the node preloads, FROM the base
  have_image "$BUNDLE_IMAGE" && have_image "registry.k8s.io/coredns/coredns:$COREDNS_TAG" && return 0
  local ctx="$cache/ctx-bundle"
  rm -rf "$ctx" && mkdir -p "$ctx"
  for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl etcd; do
    cp "$k8s_bin/$b" "$ctx/"
  done
  cp "$bin/coredns" "$bin/local-path-provisioner" "$bin/pause" "$ctx/"
  printf 'FROM %s\nCOPY . /usr/local/bin/\n' "$BASE_IMAGE" >"$ctx/Dockerfile"
  log "building $BUNDLE_IMAGE"
  docker build -q -t "$BUNDLE_IMAGE" "$ctx" >/dev/null
  printf 'FROM %s\nENTRYPOINT ["/usr/local/bin/coredns"]\n' "$BUNDLE_IMAGE" \
    | docker build -q -t "registry.k8s.io/coredns/coredns:$COREDNS_TAG" - >/dev/null
  printf 'FROM %s\nENTRYPOINT ["/usr/local/bin/pause"]\n' "$BUNDLE_IMAGE" \
    | docker build -q -t "$PAUSE_IMAGE" - >/dev/null
  for name in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    docker tag "$BUNDLE_IMAGE" "registry.k8s.io/$name:$K8S_VERSION"
  done
  docker tag "$BUNDLE_IMAGE" "registry.k8s.io/etcd:$ETCD_TAG"
  docker tag "$PAUSE_IMAGE" "registry.k8s.io/pause:$PAUSE_TAG"
}

preloaded_images() {
  echo "registry.k8s.io/kube-apiserver:$K8S_VERSION registry.k8s.io/kube-controller-manager:$K8S_VERSION"
  echo "registry.k8s.io/kube-scheduler:$K8S_VERSION registry.k8s.io/kube-proxy:$K8S_VERSION"
  echo "registry.k8s.io/etcd:$ETCD_TAG registry.k8s.io/pause:$PAUSE_TAG $PAUSE_IMAGE"
  echo "registry.k8s.io/coredns/coredns:$COREDNS_TAG $BUNDLE_IMAGE"
}

node_image() {
  have_image "$NODE_IMAGE" && return 0
  local rootfs="$cache/rootfs-node-$DEBIAN_SUITE" kindsrc
  debootstrap_to "$rootfs" "$NODE_PACKAGES"
  kindsrc=$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/images/base/files
  [ -d "$kindsrc" ] || die "kind's node files not found at $kindsrc (go install of kind failed?)"
  if [ ! -f "$rootfs/.kind-done" ]; then
    log "laying kind's node files into the node root filesystem"
    install -m 0755 "$kindsrc"/usr/local/bin/* "$rootfs/usr/local/bin/"
    mkdir -p "$rootfs/kind/bin" "$rootfs/etc/kubernetes/manifests" "$rootfs/opt/cni/bin"
    install -m 0755 "$kindsrc"/kind/bin/* "$rootfs/kind/bin/"
    cp -r "$kindsrc/etc/." "$rootfs/etc/"
    # Debian puts the CNI plugins under /usr/lib/cni; containerd and kind look in /opt/cni/bin.
    cp -a "$rootfs"/usr/lib/cni/. "$rootfs/opt/cni/bin/"
    # Two fixes this VM needs: lowering oom_score_adj is refused, so containerd must not try;
    # and the kubelet wants kubelet.slice in every cgroup v1 controller before it starts.
    sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
      "$rootfs/etc/containerd/config.toml"
    sed -i "s#registry.k8s.io/pause:[0-9.]*#registry.k8s.io/pause:$PAUSE_TAG#" \
      "$rootfs/etc/containerd/config.toml"
    install -m 0755 "$here/kubelet-cgroups.sh" "$rootfs/kind/bin/kubelet-cgroups.sh"
    printf '[Service]\nExecStartPre=/kind/bin/kubelet-cgroups.sh\n' \
      >"$rootfs/etc/systemd/system/kubelet.service.d/20-cgroup-v1-slices.conf"
    chroot "$rootfs" /bin/bash -c '
      set -e
      find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
      rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/*
      rm -f /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/basic.target.wants/*
      rm -f /lib/systemd/system/sockets.target.wants/*udev* /lib/systemd/system/sockets.target.wants/*initctl*
      echo ReadKMsg=no >> /etc/systemd/journald.conf
      ln -sf /usr/lib/systemd/systemd /sbin/init
      systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
      systemctl mask systemd-binfmt.service >/dev/null 2>&1
      ctr oci spec | jq ".hooks.createContainer[.hooks.createContainer|length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" \
        | jq "del(.process.rlimits)" > /etc/containerd/cri-base.json
    '
    # Debian installs containerd under /usr/bin; kind's unit starts /usr/local/bin/containerd.
    ln -sf /usr/bin/containerd "$rootfs/usr/local/bin/containerd"
    touch "$rootfs/.kind-done"
  fi
  log "importing the node base"
  tar -C "$rootfs" --exclude=./.done --exclude=./.kind-done -c . | docker import \
    --change 'ENV container=docker' - "$NODE_IMAGE-base" >/dev/null
  local c
  c=$(docker run -d --privileged --entrypoint=sleep "$NODE_IMAGE-base" infinity)
  for b in kubelet kubeadm kubectl; do docker cp "$k8s_bin/$b" "$c:/usr/bin/$b"; done
  docker exec "$c" bash -c "mkdir -p /kind/manifests && echo $K8S_VERSION > /kind/version"
  sed "s#@BUNDLE_IMAGE@#$BUNDLE_IMAGE#g" "$here/cni.yaml" \
    | docker exec -i "$c" tee /kind/manifests/default-cni.yaml >/dev/null
  sed "s#@BUNDLE_IMAGE@#$BUNDLE_IMAGE#g" "$here/storage.yaml" \
    | docker exec -i "$c" tee /kind/manifests/default-storage.yaml >/dev/null
  log "preloading $(preloaded_images | wc -w) images into the node's containerd"
  docker exec -d "$c" bash -c 'containerd >/var/log/containerd-build.log 2>&1'
  for _ in $(seq 30); do docker exec "$c" ctr version >/dev/null 2>&1 && break; sleep 1; done
  # shellcheck disable=SC2046
  docker save $(preloaded_images) \
    | docker exec -i "$c" ctr -n k8s.io images import --all-platforms --no-unpack --digests - >&2
  docker exec "$c" bash -c 'pkill containerd; sleep 1; rm -f /var/log/containerd-build.log'
  docker commit "$c" "$NODE_IMAGE-build" >/dev/null
  # systemd stops on SIGRTMIN+3 (SIGTERM re-executes it); `docker import` cannot set that.
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n' \
    "$NODE_IMAGE-build" | docker build -q -t "$NODE_IMAGE" - >/dev/null
  docker rm -f -v "$c" >/dev/null
  docker rmi "$NODE_IMAGE-base" "$NODE_IMAGE-build" >/dev/null
}

project_image() {  # the repository's Dockerfile on the local base; rebuilt when the tree changes
  local tag
  tag="dbmigrate:kind-$(cd "$repo" && cat Dockerfile pyproject.toml README.md \
    $(git ls-files operator 2>/dev/null || find operator -type f -name '*.py') | sha256sum | cut -c1-12)"
  if ! have_image "$tag"; then
    log "building $tag from the Dockerfile on $BASE_IMAGE"
    docker build --network host -t "$tag" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --build-arg PG_CLIENT_MAJOR=15 "$repo" >"$cache/project-image.log" 2>&1 \
      || die "docker build of the project image failed; see $cache/project-image.log"
  fi
  docker tag "$tag" "$PROJECT_IMAGE"
  # An application's image with its migrations baked in (spec.source.image), for the e2e tests.
  printf 'FROM %s\nCOPY migrations/ /migrations/\n' "$PROJECT_IMAGE" \
    | docker build -q -t "$MIGRATIONS_IMAGE" -f - "$repo/database" >/dev/null
}

# Stages may be named (for a partial rebuild); the default is all, in order.
for stage in ${*:-docker_ready go_binaries base_image cluster_images node_image project_image}; do
  case $stage in
    docker_ready|go_binaries|base_image|cluster_images|node_image|project_image) ;;
    rootfs) stage="debootstrap_to $cache/rootfs-base-$DEBIAN_SUITE $BASE_PACKAGES; debootstrap_to $cache/rootfs-node-$DEBIAN_SUITE $NODE_PACKAGES" ;;
    *) die "unknown stage $stage" ;;
  esac
  eval "$stage"
done
echo "$NODE_IMAGE $PROJECT_IMAGE $MIGRATIONS_IMAGE"
