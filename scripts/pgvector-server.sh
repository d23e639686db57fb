#!/usr/bin/env bash
# A real PostgreSQL 17 + pgvector server on 127.0.0.1, for the tests and for local use.
#
#   scripts/pgvector-server.sh start    create (once) and start it; prints its URL
#   scripts/pgvector-server.sh stop     stop it (fast shutdown)
#   scripts/pgvector-server.sh status   "running <url>" or "stopped"; exit 0 / 3
#   scripts/pgvector-server.sh url      the URL of the running server
#
# Debian 12 has no pgvector package; Debian 13 has postgresql-17 and postgresql-17-pgvector. The
# first start builds a Debian 13 root with debootstrap under $PATCHVEC_PG_CACHE
# (/var/cache/patchvec), installs the two packages there and runs initdb: about two minutes,
# once. Later starts take seconds. Safe to call twice; needs root (debootstrap, chroot).
#
# The database `patchvec` has the vector extension; role `patchvec` (password `patchvec`) owns
# it and may create databases (tests make their own; template1 has the extension too).
set -euo pipefail

data=/var/lib/patchvec/data  # inside the root
log=/var/lib/patchvec/server.log

say() { echo "pgvector-server: $*" >&2; }

# shellcheck source=scripts/pg-root.sh
. "$(dirname "$0")/pg-root.sh"

port_file() { echo "$root/var/lib/patchvec/port"; }

running() {
  [ -e "$root/.ready" ] && [ -e "$root$data/postmaster.pid" ] &&
    in_root "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

url() { echo "postgresql://patchvec:patchvec@127.0.0.1:$(cat "$(port_file)")/patchvec"; }

free_port() {
  local port
  for port in $(seq 55432 55532); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  say "no free port in 55432-55532"
  exit 1
}

psql_admin() {  # SQL as the superuser over the local socket
  in_root /usr/lib/postgresql/17/bin/psql -X -q -v ON_ERROR_STOP=1 -h /var/lib/patchvec -p "$(cat "$(port_file)")" \
    -U postgres "$@"
}

start() {
  if running; then
    url
    return
  fi
  build_root
  local fresh=0
  if [ ! -e "$root$data/PG_VERSION" ]; then
    rm -rf "${root:?}$data"
    in_root "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >/dev/null
    fresh=1
  fi
  free_port >"$(port_file)"
  # No /dev/shm in the root: dynamic shared memory in files. Sockets in /var/lib/patchvec.
  in_root "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $(cat "$(port_file)") -c unix_socket_directories=/var/lib/patchvec -c dynamic_shared_memory_type=mmap -c maintenance_work_mem=512MB -c max_connections=50" \
    start >/dev/null || { say "PostgreSQL did not start, see $root$log"; exit 1; }
  if [ "$fresh" = 1 ]; then
    psql_admin -d postgres -c "CREATE ROLE patchvec LOGIN CREATEDB PASSWORD 'patchvec'" \
      -c "CREATE DATABASE patchvec OWNER patchvec"
    psql_admin -d template1 -c "CREATE EXTENSION vector"
    psql_admin -d patchvec -c "CREATE EXTENSION IF NOT EXISTS vector"
  fi
  url
}

stop() {
  if running; then
    in_root "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    say "stopped"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running $(url)"; else echo "stopped"; exit 3; fi ;;
  url) if running; then url; else say "not running"; exit 3; fi ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
