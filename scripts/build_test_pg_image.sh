#!/usr/bin/env bash
# Builds the PostgreSQL 15 image for the tests' testcontainers path without pulling anything
# from a container registry: mmdebstrap makes a Debian 12 root file system from Debian's own
# packages (postgresql-15), and `docker build` adds it to an empty image (FROM scratch).
#
#   scripts/build_test_pg_image.sh [TAG]        TAG defaults to tradecore-test-pg:15
#   TRADECORE_TEST_PG_IMAGE=TAG TRADECORE_TEST_DATABASE=testcontainers python -m pytest ...
#
# Needs: root (mmdebstrap's chroot mode), mmdebstrap, a Docker daemon, and a Debian mirror
# (TRADECORE_PG_MIRROR, default http://deb.debian.org/debian; an air-gapped desk points it at
# its own mirror). About 25 s and 370 MB on the project's machine; the scratch tree goes to
# /dev/shm when it is writable (tmpfs: several times faster than disk).
set -euo pipefail

tag=${1:-tradecore-test-pg:15}
mirror=${TRADECORE_PG_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
scratch=${TMPDIR:-/tmp}
if [ -w /dev/shm ]; then scratch=/dev/shm; fi
work=$(mktemp -d "$scratch/tradecore-pg-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

# Docs, man pages and translations are not needed to run a test server (a third of the size).
# Debian's postgresql-common makes a cluster "main" on install; the entrypoint makes its own
# under $PGDATA, so that one is removed, and $PGDATA belongs to the postgres user the image
# runs as.
mmdebstrap --quiet --variant=minbase --include=postgresql-15 \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1/var/lib/postgresql/15" "$1/etc/postgresql/15"' \
    --customize-hook='chroot "$1" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    bookworm "$work/rootfs.tar" "$mirror"

cp "$here/test_pg_image/Dockerfile" "$here/test_pg_image/entrypoint.sh" "$work/"
mkdir "$work/run-postgresql"
# The classic builder: Debian's docker.io has no buildx, and nothing here needs BuildKit.
DOCKER_BUILDKIT=0 docker build --quiet --tag "$tag" "$work" >/dev/null

size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "built $tag ($(( size / 1000000 )) MB) in $(( $(date +%s) - started )) s"
