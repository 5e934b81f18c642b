#!/bin/sh
# Runs before the kubelet in a kind node on a cgroup v1 host: the kubelet (cgroup driver
# systemd, kubelet.slice) fails with "cgroup [kubelet] has some missing paths" unless
# kubelet.slice exists in every controller it checks, and systemd creates it in only some.
for controller in /sys/fs/cgroup/*/; do
  case "$controller" in */unified/) continue ;; esac
  [ -w "$controller" ] && mkdir -p "${controller}kubelet.slice" 2>/dev/null
done
exit 0
