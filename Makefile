# dbmigrate: the two commands a new machine needs are `make demo` and `make test`; `make help`
# lists every target. `make` alone creates the venv (install), as it always did.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help install controlplane crds check-crds lint fmt test test-unit test-db test-db-matrix \
        test-cluster testbed-up testbed-down demo clean kind-images kind-up kind-down test-kind \
        demo-kind krew
.DEFAULT_GOAL := install

# The stamp behind `install`: the venv is made again when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

help:  ## list the targets and what each does
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z-]*:.*## / { printf "  make %-16s %s\n", $$1, $$2 }' \
		$(MAKEFILE_LIST)

install: $(VENV)/.installed  ## Python environment with the package and its dev tools

controlplane:  ## build kube-apiserver, kube-controller-manager, etcd, kubectl (cached outside the repo)
	testbed/build-controlplane.sh

krew: install  ## the krew archive of kubectl dbmigrate in dist/, and its manifest's sha256
	$(PY) tools/krew.py archive dist
	$(PY) tools/krew.py manifest

crds: install  ## regenerate crds/ from the pydantic models, and its Helm and kustomize copies
	$(PY) -m dbmigrate.cli.main crd --output crds/dbmigrate.io_databasemigrations.yaml
	$(PY) -m dbmigrate.cli.main crd --kind MigrationRollback --output crds/dbmigrate.io_migrationrollbacks.yaml
	$(PY) -m dbmigrate.cli.main crd --kind DatabaseMigrationRollout --output crds/dbmigrate.io_databasemigrationrollouts.yaml
	$(PY) tools/sync_chart_crd.py

check-crds: install  ## fail if the committed CRD or its copies differ from the models
	$(PY) -m dbmigrate.cli.main crd --check --output crds/dbmigrate.io_databasemigrations.yaml
	$(PY) -m dbmigrate.cli.main crd --kind MigrationRollback --check --output crds/dbmigrate.io_migrationrollbacks.yaml
	$(PY) -m dbmigrate.cli.main crd --kind DatabaseMigrationRollout --check --output crds/dbmigrate.io_databasemigrationrollouts.yaml
	$(PY) tools/sync_chart_crd.py --check

lint: install  ## ruff check, ruff format --check, mypy (package, tests, testbed, bench)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: install  ## format the code and apply ruff's fixes (ruff format, ruff check --fix)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The db tier of `pytest tests` runs on Debian's PostgreSQL 15; the matrix then runs it on the
# other supported majors (README: Supported PostgreSQL versions).
TEST_PG_MAJORS ?= 13 14 16 17 18
test: install controlplane lint  ## every tier: unit, db (real PostgreSQL, each major), cluster (real API server)
	$(PY) -m pytest tests
	$(PY) -m testbed.pgmatrix $(TEST_PG_MAJORS)

# Neither tier depends on the control plane. tests/db needs Debian's PostgreSQL 15 and no Go;
# tests/unit starts no service, but its chart tests build helm, kubeconform and kubectl with Go
# on their first run (cached outside the repo, like the control plane).
test-unit: install  ## the unit tier: no services (the chart tests build helm and kubectl once)
	$(PY) -m pytest tests/unit

test-db: install  ## the db tier: the engine on a real PostgreSQL (Debian's 15); no Go needed
	$(PY) -m pytest tests/db

# The db tier once per supported PostgreSQL major (13 to 18; binaries fetched and cached by
# testbed/pgversions.py), one summary line per major. PG_MAJORS="13 18" runs only those.
PG_MAJORS ?=
test-db-matrix: install  ## the db tier against every supported PostgreSQL major
	$(PY) -m testbed.pgmatrix $(PG_MAJORS)

test-cluster: install controlplane  ## the cluster tier: the operator on the test bed
	$(PY) -m pytest tests/cluster

testbed-up: install controlplane  ## start the test bed and print its KUBECONFIG and database URL
	$(PY) -m testbed up

testbed-down: install  ## stop the test bed started by testbed-up
	$(PY) -m testbed down

demo: install controlplane  ## the main job on the embedded default (see README)
	$(PY) -m testbed.demo

# --- the kind tier: the project's image on a real kubelet (testbed/kindcluster.py) ------------
kind-images:  ## build (cached) Docker, kind, the node image and the project's image, no registry
	testbed/kind/build-images.sh

kind-up: install controlplane  ## create (or reuse) the kind cluster; prints its exports
	$(PY) -m testbed kind-up

kind-down: install  ## delete the kind cluster
	$(PY) -m testbed kind-down

test-kind: kind-up  ## the cluster tier against the kind cluster (image, PSA, PVC, DNS for real)
	eval "$$($(PY) -m testbed kind-env)" && $(PY) -m pytest tests/cluster

demo-kind: kind-up  ## the sample migration run by the Helm-installed operator on kind
	eval "$$($(PY) -m testbed kind-env)" && $(PY) -m testbed.demo --kind

clean:  ## remove the venv and the tool caches (not the test bed's cache outside the repo)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
