# The dbmigrate image: the operator (`dbmigrate operator`) and every step Job
# (`dbmigrate job plan|backup|apply|verify|rollback`) run this same image.
#
#   docker build -t dbmigrate:0.1.0 .
#
# Both stages start from BASE_IMAGE, the official Python image by default. Where no image
# registry is reachable, pass a base with Debian's python3 and python3-venv instead (the kind
# tier builds one from a debootstrap root filesystem: testbed/kind/build-images.sh), e.g.
#   docker build --build-arg BASE_IMAGE=dbmigrate-kind/base:bookworm --build-arg PG_CLIENT_MAJOR=15 .
#
# tests/unit/test_dockerfile_env.py builds the same Python environment without Docker (a clean
# venv, `pip install .` of the files copied below, `dbmigrate --help`) and checks this file's
# user, entrypoint and tool folder against the Helm chart.

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=trixie
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}

# --- build: the package and its dependencies in a venv (binary wheels; no compiler needed) ---
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python3 -m venv /opt/dbmigrate \
 && /opt/dbmigrate/bin/pip install --no-cache-dir . \
 && /opt/dbmigrate/bin/dbmigrate --help > /dev/null

# --- runtime ---
FROM ${BASE_IMAGE}
# PostgreSQL client tools. pg_dump must be of the same major version as the server or newer
# (dbmigrate refuses an older one before it runs), and a newer pg_dump dumps every older server
# back to 9.2, so the image carries the newest major it may meet. Debian 13 (trixie) ships
# PostgreSQL 17 in its main archive: postgresql-client-17 gives pg_dump, pg_restore and psql 17
# under /usr/lib/postgresql/17/bin. To serve a newer server, add the PostgreSQL project's own
# Debian repository (PGDG, see postgresql.org/download/linux/debian) and set PG_CLIENT_MAJOR,
# for example --build-arg PG_CLIENT_MAJOR=18. A base that already has them skips the install.
ARG PG_CLIENT_MAJOR=17
RUN if [ ! -x "/usr/lib/postgresql/${PG_CLIENT_MAJOR}/bin/pg_dump" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends "postgresql-client-${PG_CLIENT_MAJOR}" \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && "/usr/lib/postgresql/${PG_CLIENT_MAJOR}/bin/pg_dump" --version

COPY --from=build /opt/dbmigrate /opt/dbmigrate

# A fixed non-root user; the chart's pod securityContext runs as the same uid/gid.
RUN groupadd --system --gid 10001 dbmigrate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin dbmigrate

ENV PATH=/opt/dbmigrate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DBMIGRATE_PG_BIN=/usr/lib/postgresql/${PG_CLIENT_MAJOR}/bin

USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["dbmigrate"]
CMD ["--help"]
