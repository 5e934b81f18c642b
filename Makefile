# dbmigrate: the two commands a new machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install controlplane crds check-crds lint typecheck test test-unit test-db test-db-matrix test-cluster \
        testbed-up testbed-down demo bench clean kind-images kind-up kind-down test-kind demo-kind

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## Python environment with the package and its dev tools

controlplane:  ## build kube-apiserver, kube-controller-manager, etcd, kubectl (cached outside the repo)
	testbed/build-controlplane.sh

crds: install  ## regenerate the CRD from the pydantic models
	$(PY) -m dbmigrate.cli.main crd --output crds/dbmigrate.io_databasemigrations.yaml
	$(PY) tools/sync_chart_crd.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The db tier of `pytest tests` runs on Debian's PostgreSQL 15; the matrix then runs it on the
# other supported majors (README: Supported PostgreSQL versions).
TEST_PG_MAJORS ?= 13 14 16 17 18
test: install controlplane lint  ## every tier: unit, db (real PostgreSQL, each major), cluster (real API server)
	$(PY) -m pytest tests
	$(PY) -m testbed.pgmatrix $(TEST_PG_MAJORS)

test-unit: install
	$(PY) -m pytest tests/unit

test-db: install
	$(PY) -m pytest tests/db

# The db tier once per supported PostgreSQL major (13 to 18; binaries fetched and cached by
# testbed/pgversions.py), one summary line per major. PG_MAJORS="13 18" runs only those.
PG_MAJORS ?=
test-db-matrix: install  ## the db tier against every supported PostgreSQL major
	$(PY) -m testbed.pgmatrix $(PG_MAJORS)

test-cluster: install controlplane
	$(PY) -m pytest tests/cluster

testbed-up: install controlplane  ## start the test bed and print its KUBECONFIG and database URL
	$(PY) -m testbed up

testbed-down: install
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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
