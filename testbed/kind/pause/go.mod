// The pause process every pod's sandbox runs (kubelet's sandbox image), built locally.
module dbmigrate.io/testbed/kind/pause

go 1.24.0
