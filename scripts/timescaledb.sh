#!/usr/bin/env bash
# A PostgreSQL server with TimescaleDB, for the tests of the hypertable branch of migration
# 0006. Debian 12 (this machine's release) packages no TimescaleDB; Debian 13 does (the
# Apache-licensed build, for PostgreSQL 17). So this builds a minimal Debian 13 root with
# debootstrap once (about 40 s and 500 MB, checked against Debian's archive keys), kept in
# $WATTLINE_TSDB_ROOT, and runs that server inside it with chroot on
# 127.0.0.1:$WATTLINE_TSDB_PORT, trust auth. Needs root (debootstrap, chroot).
#
#   scripts/timescaledb.sh start   build if needed, start, print the URL of its `test` database
#   scripts/timescaledb.sh stop    stop the server
set -euo pipefail

ROOT=${WATTLINE_TSDB_ROOT:-/var/tmp/wattline-timescaledb}
PORT=${WATTLINE_TSDB_PORT:-55432}
PG=${WATTLINE_TSDB_PG:-17}  # the PostgreSQL major Debian 13 builds TimescaleDB for
SUITE=${WATTLINE_TSDB_SUITE:-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DATA=/srv/pg/data
URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/test"

in_root() { chroot "$ROOT" /bin/su postgres -s /bin/sh -c "$1"; }
ready() { [ -f "$ROOT/.wattline-ready" ]; }
up() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

build() {
  if [ "$(id -u)" != 0 ]; then
    echo "timescaledb.sh: building the TimescaleDB root needs root (debootstrap, chroot)" >&2
    exit 2
  fi
  if ! command -v debootstrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  echo "timescaledb.sh: building a Debian $SUITE root with PostgreSQL $PG and TimescaleDB in $ROOT" >&2
  rm -rf "$ROOT.tmp"
  debootstrap --variant=minbase --include="postgresql-$PG,postgresql-$PG-timescaledb" \
    "$SUITE" "$ROOT.tmp" "$MIRROR" >"$ROOT.log" 2>&1 || {
    tail -n 20 "$ROOT.log" >&2
    exit 1
  }
  chroot "$ROOT.tmp" /bin/sh -c "mkdir -p /srv/pg && chown postgres /srv/pg"
  rm -rf "$ROOT"
  mv "$ROOT.tmp" "$ROOT"
  in_root "/usr/lib/postgresql/$PG/bin/initdb -D $DATA -A trust -U postgres" >/dev/null
  touch "$ROOT/.wattline-ready"
  fresh=1
}

start() {
  fresh=0
  ready || build
  if ! up; then
    # No /dev/shm or /proc in the root: shared memory for parallel queries goes through mmap.
    in_root "/usr/lib/postgresql/$PG/bin/pg_ctl -D $DATA -l /srv/pg/log -w -t 60 -o \
      '-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c shared_preload_libraries=timescaledb \
       -c dynamic_shared_memory_type=mmap -c timescaledb.telemetry_level=off' start" >/dev/null || {
      tail -n 20 "$ROOT/srv/pg/log" >&2
      exit 1
    }
  fi
  if [ "$fresh" = 1 ]; then
    in_root "/usr/lib/postgresql/$PG/bin/createdb -h /tmp -p $PORT test"
  fi
  echo "$URL"
}

stop() {
  if ready && up; then
    in_root "/usr/lib/postgresql/$PG/bin/pg_ctl -D $DATA -m fast -w stop" >/dev/null
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 64 ;;
esac
