"""The test bed: real PostgreSQL, etcd, kube-apiserver and kube-controller-manager on loopback,
plus a small local kubelet, started without Docker for the db and cluster test tiers and for
`python -m testbed up`."""
