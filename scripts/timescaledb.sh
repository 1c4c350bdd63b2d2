#!/usr/bin/env bash
# A PostgreSQL server with TimescaleDB, for the tests of the hypertable branches of
# migrations 0006 (readings) and 0011 (register_reads). Debian 12, this machine's release,
# packages no TimescaleDB; Debian 13 does (the Apache-licensed build, for PostgreSQL 17).
# So this builds a minimal Debian 13 root with debootstrap once (about 40 s and 500 MB;
# --force-check-gpg: every package checked against Debian's archive keys), kept in
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
psql_root() { in_root "/usr/lib/postgresql/$PG/bin/psql -h /tmp -p $PORT -d postgres -Atc \"$1\""; }

build() {
  if [ "$(id -u)" != 0 ]; then
    echo "timescaledb.sh: building the TimescaleDB root needs root (debootstrap, chroot)" >&2
    exit 2
  fi
  if ! command -v debootstrap >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } >&2
  fi
  echo "timescaledb.sh: building a Debian $SUITE root with PostgreSQL $PG and TimescaleDB in $ROOT" >&2
  rm -rf "$ROOT.tmp"
  debootstrap --force-check-gpg --variant=minbase \
    --include="postgresql-$PG,postgresql-$PG-timescaledb" \
    "$SUITE" "$ROOT.tmp" "$MIRROR" >"$ROOT.log" 2>&1 || {
    tail -n 20 "$ROOT.log" >&2
    exit 1
  }
  chroot "$ROOT.tmp" /bin/sh -c "mkdir -p /srv/pg && chown postgres /srv/pg"
  rm -rf "$ROOT"
  mv "$ROOT.tmp" "$ROOT"
  in_root "/usr/lib/postgresql/$PG/bin/initdb -D $DATA -A trust -U postgres" >&2
  touch "$ROOT/.wattline-ready"
}

start() {
  ready || build
  if ! up; then
    # Nothing listens, so a postmaster.pid left by a server that was killed is stale; its
    # PID may belong to another process by now, which would stop PostgreSQL starting.
    rm -f "$ROOT$DATA/postmaster.pid"
    # No /dev/shm or /proc in the root: shared memory for parallel queries goes through mmap.
    in_root "/usr/lib/postgresql/$PG/bin/pg_ctl -D $DATA -l /srv/pg/log -w -t 60 -o \
      '-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c shared_preload_libraries=timescaledb \
       -c dynamic_shared_memory_type=mmap -c timescaledb.telemetry_level=off' start" >&2 || {
      tail -n 20 "$ROOT/srv/pg/log" >&2
      exit 1
    }
  fi
  # Our server (its socket is in the root) with the extension, not another on the port.
  if [ "$(psql_root "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'" 2>/dev/null)" != 1 ]; then
    echo "timescaledb.sh: 127.0.0.1:$PORT is not this root's PostgreSQL with TimescaleDB" >&2
    exit 1
  fi
  if [ "$(psql_root "SELECT count(*) FROM pg_database WHERE datname = 'test'")" != 1 ]; then
    in_root "/usr/lib/postgresql/$PG/bin/createdb -h /tmp -p $PORT test" >&2
  fi
  echo "$URL"
}

stop() {
  if ready && up; then
    in_root "/usr/lib/postgresql/$PG/bin/pg_ctl -D $DATA -m fast -w stop" >&2
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 64 ;;
esac
