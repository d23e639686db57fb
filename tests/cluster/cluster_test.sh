#!/usr/bin/env bash
# scripts/cluster.sh as an operator uses it: a primary, a streaming standby, two workers and
# haproxy, each in a network namespace of its own (addresses 10.79.0.0/24, made here and removed
# at the end). Drills: inspections through the balancer, a worker stopped, a new model revision
# published, the standby stopped, the primary stopped and the standby promoted.
#   tests/cluster/cluster_test.sh BUILD_DIR FIXTURE_DIR
set -euo pipefail
build=$(realpath "$1")
fixtures=$(realpath "$2")
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
export PATCHVEC_CLUSTER=pvtest PATCHVEC_CLUSTER_NET=10.79.0 PATCHVEC_CLUSTER_DIR="$work/cluster"
export PATCHVEC_BINARY="$build/patchvec"
cluster="$source_dir/scripts/cluster.sh"
cleanup() {
  "$cluster" down --purge >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  "$cluster" status >&2 || true
  for log in "$work"/cluster/worker*/serve.log; do echo "== $log" >&2; tail -20 "$log" >&2; done
  exit 1
}

data="$fixtures/patchcore/data"
patchvec="$build/patchvec"
weights="$fixtures/patchcore/resnet18.safetensors"
"$patchvec" -q train --data "$data" --category synthetic --backbone resnet18 --weights "$weights" \
  --out "$work/models"
"$patchvec" -q train --data "$data" --category synthetic --backbone resnet18 --weights "$weights" \
  --coreset-ratio 0.3 --out "$work/models-2"
# The embedded store beside the model, as make demo leaves one: up copies its images.
"$patchvec" -q index --model "$work/models/synthetic.pvm" --data "$data" >/dev/null

start=$(date +%s.%N)
"$cluster" up --workers 2 --models "$work/models" --data "$data" >"$work/up.txt" 2>&1 ||
  { cat "$work/up.txt"; fail "up"; }
up_seconds=$(python3 -c "import sys; print(f'{$(date +%s.%N) - $start:.1f}')")
! grep -q "embedding the images" "$work/up.txt" || { cat "$work/up.txt"; fail "up embedded the images again"; }
url=$("$cluster" url)
db=$("$cluster" db-url)
image="$data/synthetic/test/blob/000.png"
good="$data/synthetic/test/good/000.png"

inspect() {  # FILE -> the HTTP status of one inspection through the balancer
  curl -s -o "$work/answer.json" -w '%{http_code}' -m 30 --data-binary "@$1" \
    "$url/v1/inspect?category=synthetic"
}
all_succeed() {  # COUNT FILE: every inspection answers 200
  local i code
  for i in $(seq "$1"); do
    code=$(inspect "$2")
    [ "$code" = 200 ] || fail "inspection $i of $1 answered $code: $(cat "$work/answer.json")"
  done
}
serves() {  # WORKER REVISION: true when the worker serves that revision
  local revision
  revision=$(curl -s -m 5 "http://10.79.0.$((10 + ${1#worker})):8080/v1/categories" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["published"]["revision"])' 2>/dev/null)
  [ "$revision" = "$2" ]
}
wait_until() {  # DESCRIPTION COMMAND...: up to 15 s
  local what=$1
  shift
  for _ in $(seq 150); do "$@" && return 0; sleep 0.1; done
  fail "$what"
}

# Through the balancer; both workers answer. The copied images are found: a stored good image
# is its own closest match.
code=$(inspect "$good")
[ "$code" = 200 ] || fail "the good image answered $code"
python3 -c 'import json,sys; m = json.load(open(sys.argv[1]))["matches"]
assert m and m[0]["similarity"] > 0.9999, m' "$work/answer.json" ||
  fail "the good image is not its own closest match: $(cat "$work/answer.json")"
all_succeed 8 "$image"
for k in 1 2; do
  n=$(curl -s -m 5 "http://10.79.0.$((10 + k)):8080/metrics" |
    awk '/^patchvec_requests_total.*inspect/ {s += $2} END {print s + 0}')
  [ "$n" -gt 0 ] || fail "worker$k answered no inspection"
done

# A worker stops: every following request still succeeds (haproxy retries the refused connection
# on the other worker), and it comes back.
"$cluster" stop worker1
all_succeed 8 "$image"
"$cluster" start worker1

# A new revision: both workers serve it within seconds, requests succeed meanwhile.
"$patchvec" -q publish --db "$db?target_session_attrs=read-write" "$work/models-2/synthetic.pvm"
all_succeed 2 "$image"
wait_until "worker1 serves revision 2" serves worker1 2
wait_until "worker2 serves revision 2" serves worker2 2

# The standby stops: nothing changes for clients.
"$cluster" stop standby
all_succeed 4 "$good"
"$cluster" start standby

report_count() {
  "$patchvec" reports --json --db "$db" --limit 1000 |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
reports_reach() { [ "$(report_count)" -eq "$1" ]; }
pending_answer() {  # the last answer waits in a worker's spool
  python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); sys.exit(0 if d["report_pending"] and d["report_id"] is None else 1)' \
    "$work/answer.json"
}

# The primary stops: inspections still answer (searches on the standby), their reports wait in
# the workers' spools, and once the primary is back each is stored exactly once.
before=$(report_count)
"$cluster" stop primary
for i in 1 2 3; do
  [ "$(inspect "$image")" = 200 ] || fail "inspection $i without a primary: $(cat "$work/answer.json")"
  pending_answer || fail "answer $i without a primary is not pending: $(cat "$work/answer.json")"
done
"$cluster" start primary
wait_until "the 3 spooled reports are stored" reports_reach $((before + 3))
sleep 3
reports_reach $((before + 3)) || fail "spooled reports stored more than once: $(report_count)"

# down keeps the databases: the next up serves the same reports and models at once.
before=$(report_count)
"$cluster" down >/dev/null 2>&1
start=$(date +%s.%N)
"$cluster" up --workers 2 --models "$work/models" --data "$data" >"$work/up2.txt" 2>&1 ||
  { cat "$work/up2.txt"; fail "up again"; }
again_seconds=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
reports_reach "$before" || fail "reports after down and up: $(report_count), expected $before"
wait_until "worker1 serves revision 2 after up" serves worker1 2
all_succeed 2 "$good"

# The primary goes away for good and the standby is promoted: workers write to the new primary
# (a write that meets the old one is spooled and stored a moment later).
before=$(report_count)
"$cluster" stop primary
"$cluster" promote
all_succeed 4 "$image"
wait_until "4 reports on the new primary" reports_reach $((before + 4))
sleep 3
reports_reach $((before + 4)) || fail "reports after promotion stored twice: $(report_count)"
if "$cluster" start primary 2>/dev/null; then fail "the old primary came back beside the new one"; fi

"$cluster" down
if ip netns list | grep -q '^pvtest-'; then fail "namespaces left after down"; fi
echo "cluster: ok (up with 2 workers in $up_seconds s, up again after down in $again_seconds s)"
