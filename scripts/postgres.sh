#!/usr/bin/env bash
# A throw-away PostgreSQL 15 + PostGIS 3 cluster on 127.0.0.1 for the test suite and the
# benchmarks. Installs Debian's postgresql and postgresql-15-postgis-3 when missing.
#
#   scripts/postgres.sh start   # installs, initdb's once, starts; prints the superuser URL last
#   scripts/postgres.sh stop
#   scripts/postgres.sh url
#
# The cluster trusts local connections from 127.0.0.1 only (it never listens elsewhere);
# the application's own roles and their grants are made by the store's migrations.
set -euo pipefail
PORT="${GIS_GRID_PG_PORT:-55432}"
PGBIN="/usr/lib/postgresql/15/bin"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ "$(id -u)" -eq 0 ]; then
  DATA="${GIS_GRID_PG_DIR:-/var/tmp/gis_grid_pg}"
  as_pg() { runuser -u postgres -- "$@"; }
else
  DATA="${GIS_GRID_PG_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.pg}"
  as_pg() { "$@"; }
fi
URL="postgresql://postgres@127.0.0.1:${PORT}/postgres"

install() {
  [ -x "$PGBIN/initdb" ] && [ -e /usr/share/postgresql/15/extension/postgis.control ] && return 0
  echo "installing postgresql-15 and postgresql-15-postgis-3" >&2
  $SUDO apt-get update -qq >&2
  # Debian may start its own cluster on 5432; ours has its own port and data directory
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    postgresql postgresql-15-postgis-3 >&2
}

running() { as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  install
  if [ ! -s "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$DATA"
    as_pg "$PGBIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DATA'
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi
  if ! running; then
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start >/dev/null
  fi
  echo "$URL"
}

case "${1:-start}" in
  start) start ;;
  stop) running && as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; true ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
