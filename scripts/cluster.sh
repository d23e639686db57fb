#!/usr/bin/env bash
# A PatchVec cluster on this machine, each node a host of its own: a Linux network namespace with
# its own address on a private bridge. A PostgreSQL 17 + pgvector primary and one streaming
# standby (pg_basebackup -R), N `patchvec serve` workers serving the models published in the
# database, and haproxy balancing /v1/* over the workers with /healthz checks.
#
#   scripts/cluster.sh up [--workers N] [--models DIR --data DIR]
#   scripts/cluster.sh down [--purge] | status | url | db-url
#   scripts/cluster.sh stop NODE | start NODE     NODE: primary, standby, worker1..N, balancer
#   scripts/cluster.sh promote                    the standby becomes the primary
#
# `up` publishes DIR's models (default build/demo/models, from `make demo`) of the categories the
# database has none of, and indexes them: copied from the store beside the models (DIR/store.pvs,
# which make demo fills) when it was made with them, else embedded from DIR's data (about a
# minute for make demo's). `url` prints the balancer's URL, `db-url` a multi-host libpq URL (both
# database hosts; clients pick with target_session_attrs). `down` stops everything `up` started
# and removes the namespaces and the bridge; the databases, model caches and spooled reports stay
# for the next `up` unless `down --purge`.
#
# Needs root (ip netns, chroot). The PostgreSQL root is scripts/pgvector-server.sh's (built once).
# Traffic stays on the bridge's private addresses ($PATCHVEC_CLUSTER_NET.0/24, default
# 10.77.0.0/24); several clusters may run at once under other $PATCHVEC_CLUSTER names and nets.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[[ "${PATCHVEC_CLUSTER:-pvc}" =~ ^[a-z][a-z0-9]{0,9}$ ]] ||
  { echo "cluster: PATCHVEC_CLUSTER must be 1-10 lowercase letters and digits" >&2; exit 2; }
repo=$(dirname "$here")
name=${PATCHVEC_CLUSTER:-pvc}
net=${PATCHVEC_CLUSTER_NET:-10.77.0}
state=${PATCHVEC_CLUSTER_DIR:-/var/lib/patchvec-cluster/$name}
patchvec=${PATCHVEC_BINARY:-$repo/build/patchvec}
bridge=${name}br0
pgdir=/var/lib/patchvec/cluster-$name  # inside the PostgreSQL root
port=8080

say() { echo "cluster: $*" >&2; }

# shellcheck source=scripts/pg-root.sh
. "$here/pg-root.sh"

address() {  # NODE -> its address
  case "$1" in
    primary) echo "$net.2" ;;
    standby) echo "$net.3" ;;
    balancer) echo "$net.10" ;;
    worker*) echo "$net.$((10 + ${1#worker}))" ;;
    *) say "no node $1 (primary, standby, worker1..N, balancer)"; exit 2 ;;
  esac
}

ns() { echo "$name-$1"; }

workers() { cat "$state/workers" 2>/dev/null || echo 0; }

db_url() {  # both database hosts, as clients on the bridge reach them
  echo "postgresql://patchvec:patchvec@$net.2:5432,$net.3:5432/patchvec"
}

# --- hosts -------------------------------------------------------------------------------------

veth() {  # NODE -> the bridge side of its link (interface names have at most 15 characters)
  case "$1" in
    primary) echo "${name}-p" ;;
    standby) echo "${name}-s" ;;
    balancer) echo "${name}-b" ;;
    worker*) echo "${name}-w${1#worker}" ;;
  esac
}

add_host() {  # NODE: a namespace with eth0 on the bridge
  local node=$1 namespace link
  namespace=$(ns "$node")
  link=$(veth "$node")
  ip netns list | grep -q "^$namespace\b" && return 0
  ip netns add "$namespace"
  ip link add "$link" type veth peer name eth0 netns "$namespace"
  ip link set "$link" master "$bridge" up
  ip -n "$namespace" addr add "$(address "$node")/24" dev eth0
  ip -n "$namespace" link set eth0 up
  ip -n "$namespace" link set lo up
}

add_bridge() {
  ip link show "$bridge" >/dev/null 2>&1 && return 0
  ip link add "$bridge" type bridge
  ip addr add "$net.1/24" dev "$bridge"
  ip link set "$bridge" up
}

# --- PostgreSQL --------------------------------------------------------------------------------

pg_in() {  # NODE COMMAND...: a command in the root as postgres, on NODE's network
  local node=$1
  shift
  ip netns exec "$(ns "$node")" chroot --userspec=postgres:postgres "$root" env -i \
    PATH=/usr/bin:/bin HOME=/var/lib/postgresql LANG=C.UTF-8 "$@"
}

pg_running() {  # NODE
  [ -e "$root$pgdir/$1/postmaster.pid" ] && in_root "$bin/pg_ctl" -D "$pgdir/$1" status >/dev/null 2>&1
}

pg_start() {  # NODE
  local node=$1
  pg_running "$node" && return 0
  mkdir -p "$root$pgdir/$node-socket"
  chroot "$root" chown postgres:postgres "$pgdir/$node-socket"
  pg_in "$node" "$bin/pg_ctl" -D "$pgdir/$node" -l "$pgdir/$node.log" -w -t 60 \
    -o "-c listen_addresses=$(address "$node") -p 5432 -c unix_socket_directories=$pgdir/$node-socket" \
    start >/dev/null || { say "$node did not start, see $root$pgdir/$node.log"; exit 1; }
}

pg_stop() {  # NODE
  pg_running "$1" || return 0
  in_root "$bin/pg_ctl" -D "$pgdir/$1" -m fast -w -t 60 stop >/dev/null
}

psql_on() {  # NODE SQL-ARGS...: as the superuser over NODE's socket
  local node=$1
  shift
  in_root "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$pgdir/$node-socket" -p 5432 -U postgres "$@"
}

make_primary() {
  [ -e "$root$pgdir/primary/PG_VERSION" ] && return 0
  mkdir -p "$root$pgdir"
  chroot "$root" chown postgres:postgres "$pgdir"
  in_root "$bin/initdb" -D "$pgdir/primary" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  # No /dev/shm in the root: dynamic shared memory in files. Settings the standby copies.
  cat >>"$root$pgdir/primary/postgresql.conf" <<CONF
dynamic_shared_memory_type = mmap
max_connections = 100
wal_level = replica
max_wal_senders = 10
wal_keep_size = 256MB
hot_standby = on
maintenance_work_mem = 256MB
CONF
  cat >>"$root$pgdir/primary/pg_hba.conf" <<HBA
host all all $net.0/24 scram-sha-256
host replication replicator $net.0/24 scram-sha-256
HBA
  pg_start primary
  psql_on primary -d postgres -c "CREATE ROLE patchvec LOGIN PASSWORD 'patchvec'" \
    -c "CREATE ROLE replicator LOGIN REPLICATION PASSWORD 'replicator'" \
    -c "CREATE DATABASE patchvec OWNER patchvec"
  psql_on primary -d patchvec -c "CREATE EXTENSION vector"
}

make_standby() {
  [ -e "$root$pgdir/standby/PG_VERSION" ] && return 0
  pg_in standby env PGPASSWORD=replicator "$bin/pg_basebackup" -h "$net.2" -p 5432 -U replicator \
    -D "$pgdir/standby" -R -X stream -c fast >/dev/null
}

# --- workers and balancer ----------------------------------------------------------------------

pid_alive() { [ -e "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

worker_start() {  # workerK
  local node=$1 dir="$state/$1"
  pid_alive "$dir/pid" && return 0
  mkdir -p "$dir"
  local threads=$(($(nproc) / $(workers)))
  [ "$threads" -ge 1 ] || threads=1
  # Both database hosts: searches on the standby while one answers, reports and models on the
  # primary, whichever host it is. The address is private to this machine's bridge: no tokens
  # needed (--insecure). Clients name the balancer (its Host header passes through), and health
  # checks the worker itself.
  ip netns exec "$(ns "$node")" setsid "$patchvec" serve --db "$(db_url)" \
    --host "$(address "$node")" --port "$port" --insecure --threads "$threads" \
    --allowed-hosts "$(address balancer),$(address "$node")" \
    --model-cache "$dir/models" --report-spool "$dir/spool" --report-images "$state/report-images" \
    </dev/null >>"$dir/serve.log" 2>&1 &
  echo $! >"$dir/pid"
  local i
  for i in $(seq 150); do
    if ip netns exec "$(ns balancer)" curl -s -o /dev/null -m 1 \
      "http://$(address "$node"):$port/livez" 2>/dev/null; then
      return 0
    fi
    pid_alive "$dir/pid" || break
    sleep 0.2
  done
  say "$node did not start, see $dir/serve.log"
  tail -5 "$dir/serve.log" >&2
  exit 1
}

worker_stop() {  # workerK
  local pid_file="$state/$1/pid"
  pid_alive "$pid_file" || return 0
  local pid
  pid=$(cat "$pid_file")
  kill "$pid"
  local i
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pid_file"
}

balancer_config() {
  local k
  cat >"$state/haproxy.cfg" <<CFG
global
  maxconn 512
  pidfile $state/haproxy.pid

defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  timeout check 2s
  # A worker that is gone refuses the connection: the request goes to another one.
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response

frontend api
  bind $net.10:$port
  default_backend workers

backend workers
  balance leastconn
  option httpchk GET /healthz
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1
CFG
  for k in $(seq "$(workers)"); do
    echo "  server worker$k $(address "worker$k"):$port check" >>"$state/haproxy.cfg"
  done
}

balancer_start() {
  pid_alive "$state/haproxy.pid" && return 0
  balancer_config
  ip netns exec "$(ns balancer)" haproxy -D -f "$state/haproxy.cfg" ||
    { say "haproxy did not start"; exit 1; }
}

balancer_stop() {
  pid_alive "$state/haproxy.pid" || return 0
  kill "$(cat "$state/haproxy.pid")"
  rm -f "$state/haproxy.pid"
}

# --- commands ----------------------------------------------------------------------------------

publish_models() {  # DIR DATA: publish, and index what is new
  local models=$1 data=$2
  [ -d "$models" ] || { say "no models in $models (run make demo, or give --models DIR --data DIR)"; exit 1; }
  models=$(cd "$models" && pwd)
  [ ! -d "$data" ] || data=$(cd "$data" && pwd)
  local files=("$models"/*.pvm)
  [ -e "${files[0]}" ] || { say "no .pvm files in $models"; exit 1; }
  local url
  url=$(db_url)
  # Only categories the database has no model of: a revision published since stays the newest.
  local published new=() file
  published=$("$patchvec" models --json --db "$url" |
    python3 -c 'import json,sys; print(" ".join(m["category"] for m in json.load(sys.stdin)))')
  for file in "${files[@]}"; do
    [[ " $published " == *" $(basename "$file" .pvm) "* ]] || new+=("$file")
  done
  [ ${#new[@]} -gt 0 ] || return 0
  local added
  added=$("$patchvec" -q publish --json --db "$url" "${new[@]}" |
    python3 -c 'import json,sys; print(" ".join(p["file"] for p in json.load(sys.stdin) if p["added"]))')
  [ -n "$added" ] || return 0
  # The images' embeddings: copied from the store beside the models when it was indexed with them
  # (make demo's; index checks a few by predicting them again), else predicted from DATA.
  # shellcheck disable=SC2086  # file names from our own folder, one per word
  if [ -f "$models/store.pvs" ] &&
    (cd "$repo" && "$patchvec" -q index --db "$url" --from-store "$models/store.pvs" \
      --model $added >/dev/null); then
    return 0
  fi
  say "embedding the images of $data (about a minute for make demo's)"
  # shellcheck disable=SC2086
  "$patchvec" -q index --db "$url" --data "$data" --model $added >/dev/null
}

up() {
  local n=2 models="$repo/build/demo/models" data="$repo/build/demo/data"
  while [ $# -gt 0 ]; do
    case "$1" in
      --workers | --models | --data)
        [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || { say "$1 needs a value"; exit 2; } ;;
    esac
    case "$1" in
      --workers) n=$2; shift 2 ;;
      --models) models=$2; shift 2 ;;
      --data) data=$2; shift 2 ;;
      *) say "unknown option $1"; exit 2 ;;
    esac
  done
  [[ "$n" =~ ^[1-9][0-9]?$ ]] && [ "$n" -le 80 ] || { say "--workers must be 1 to 80"; exit 2; }
  [ -x "$patchvec" ] || { say "no $patchvec (build first, or set PATCHVEC_BINARY)"; exit 1; }
  command -v haproxy >/dev/null || apt-get install -y -qq haproxy >/dev/null
  build_root
  if [ -e "$state/promoted" ]; then
    say "the standby of this cluster was promoted: its old primary must not come back; start afresh with down --purge"
    exit 1
  fi
  mkdir -p "$state"
  echo "$n" >"$state/workers"
  # A failure half-way stops what was started (processes, namespaces, the bridge); the data
  # stays, as after down.
  trap 'code=$?; if [ "$code" -ne 0 ]; then say "up failed: stopping what it started"; down >/dev/null 2>&1 || true; fi' EXIT
  add_bridge
  local node
  for node in primary standby balancer $(seq -f 'worker%g' "$n"); do add_host "$node"; done
  make_primary
  pg_start primary
  make_standby
  pg_start standby
  publish_models "$models" "$data"
  for node in $(seq -f 'worker%g' "$n"); do worker_start "$node"; done
  balancer_start
  trap - EXIT
  status
}

down() {  # [--purge]
  local k node purge=0
  [ "${1:-}" = --purge ] && purge=1
  balancer_stop
  for k in $(seq "$(workers)"); do worker_stop "worker$k"; done
  pg_stop standby
  pg_stop primary
  for node in primary standby balancer $(seq -f 'worker%g' "$(workers)"); do
    ip netns del "$(ns "$node")" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  if [ "$purge" = 1 ]; then
    rm -rf "${root:?}$pgdir" "${state:?}"
  elif [ -e "$state/workers" ]; then
    say "stopped; the databases, models and spooled reports stay for the next up (down --purge removes them)"
  fi
}

role() {  # NODE: primary or standby, as the server says
  case "$(psql_on "$1" -d postgres -tAc 'SELECT pg_is_in_recovery()' 2>/dev/null)" in
    t) echo standby ;;
    f) echo primary ;;
    *) echo "?" ;;
  esac
}

status() {
  local k
  [ -e "$state/workers" ] || { echo "no cluster $name"; return 3; }
  for node in primary standby; do
    if pg_running "$node"; then
      echo "$node $(address "$node"):5432 running ($(role "$node"))"
    else
      echo "$node $(address "$node"):5432 stopped"
    fi
  done
  for k in $(seq "$(workers)"); do
    if pid_alive "$state/worker$k/pid"; then
      echo "worker$k $(address "worker$k"):$port running"
    else
      echo "worker$k $(address "worker$k"):$port stopped"
    fi
  done
  if pid_alive "$state/haproxy.pid"; then
    echo "balancer http://$(address balancer):$port/ running"
  else
    echo "balancer http://$(address balancer):$port/ stopped"
  fi
}

node_command() {  # stop|start NODE
  local action=$1 node=${2:-}
  [ -n "$node" ] || { say "$action which node? primary, standby, worker1..N, balancer"; exit 2; }
  address "$node" >/dev/null
  case "$action:$node" in
    stop:primary | stop:standby) pg_stop "$node" ;;
    start:primary | start:standby) pg_start "$node" ;;
    stop:balancer) balancer_stop ;;
    start:balancer) balancer_start ;;
    stop:worker*) worker_stop "$node" ;;
    start:worker*)
      [ "${node#worker}" -le "$(workers)" ] || { say "no $node (the cluster has $(workers))"; exit 2; }
      worker_start "$node" ;;
  esac
}

promote() {
  pg_running standby || { say "the standby is not running"; exit 1; }
  if pg_running primary && [ "$(role primary)" = primary ]; then
    say "the primary still runs: stop it first (scripts/cluster.sh stop primary)"
    exit 1
  fi
  in_root "$bin/pg_ctl" -D "$pgdir/standby" -w -t 60 promote >/dev/null
  # The old primary must not come back as a second primary.
  touch "$state/promoted"
  say "the standby at $(address standby) is the primary now"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down "${2:-}" ;;
  status) status ;;
  url) echo "http://$(address balancer):$port" ;;
  db-url) db_url ;;
  stop | start)
    if [ "$1:${2:-}" = "start:primary" ] && [ -e "$state/promoted" ]; then
      say "the standby was promoted: the old primary would be a second primary (rebuild it as a standby)"
      exit 1
    fi
    node_command "$1" "${2:-}" ;;
  promote) promote ;;
  *) echo "usage: $0 up [--workers N] [--models DIR --data DIR] | down [--purge] | status | url | db-url | stop NODE | start NODE | promote" >&2; exit 2 ;;
esac
