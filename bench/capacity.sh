#!/usr/bin/env bash
# The numbers docs/scaling.md's capacity model starts from, measured on the test server
# (scripts/pgvector-server.sh): bytes per stored image embedding (1536 dimensions, wide_resnet50_2's
# layer2 + layer3) as vector and as halfvec, bytes per anomaly report row, and HNSW build times
# and index sizes for 20,000 and 50,000 embeddings of each type (random unit vectors: HNSW's cost
# does not depend on what they show).
#
#   bench/capacity.sh [BUILD_DIR]
set -euo pipefail
build=$(realpath "${1:-build}")
source_dir=$(cd "$(dirname "$0")/.." && pwd)
patchvec="$build/patchvec"
demo="$build/demo"
[ -e "$demo/models/tile.pvm" ] || PATCHVEC_OFFLINE=1 "$patchvec" demo --out "$demo" >/dev/null
url=$("$source_dir/scripts/pgvector-server.sh" start)
db="${url%/*}/bench_capacity"
sql() { PGCONNECT_TIMEOUT=10 timeout 1200 psql -X -q -v ON_ERROR_STOP=1 -tA "$1" -c "$2"; }
sql "$url" "DROP DATABASE IF EXISTS bench_capacity WITH (FORCE)" 2>/dev/null
sql "$url" "CREATE DATABASE bench_capacity"
trap 'sql "$url" "DROP DATABASE IF EXISTS bench_capacity WITH (FORCE)" >/dev/null 2>&1 || true' EXIT

# Real rows: make demo's tile category indexed, its test images searched (reports for anomalies).
"$patchvec" -q index --model "$demo/models/tile.pvm" --data "$demo/data" --db "$db" >/dev/null
"$patchvec" -q search --model "$demo/models/tile.pvm" --db "$db" --json "$demo"/data/tile/test/* \
  >/dev/null
image_vector=$(sql "$db" "SELECT round(avg(pg_column_size(embedding))) FROM images")
image_halfvec=$(sql "$db" "SELECT round(avg(pg_column_size(embedding::halfvec))) FROM images")
image_row=$(sql "$db" "SELECT round(avg(pg_column_size(i.*))) FROM images i")
report_row=$(sql "$db" "SELECT round(avg(pg_column_size(r.*))) FROM reports r")
reports=$(sql "$db" "SELECT count(*) FROM reports")
dim=$(sql "$db" "SELECT value FROM patchvec_meta WHERE key = 'dimension'")

results=()
for n in 20000 50000; do
  sql "$db" "DROP TABLE IF EXISTS synthetic" 2>/dev/null
  # One random unit vector per row (the correlated subquery makes each row draw its own).
  sql "$db" "CREATE TABLE synthetic AS SELECT g AS id, (SELECT l2_normalize(array_agg(random() - 0.5)::vector)::vector($dim)
             FROM generate_series(1, $dim) WHERE g > 0) AS embedding FROM generate_series(1, $n) g"
  for type in vector halfvec; do
    if [ "$type" = vector ]; then
      what="embedding vector_cosine_ops"
    else
      what="(embedding::halfvec($dim)) halfvec_cosine_ops"
    fi
    start=$(date +%s.%N)
    sql "$db" "SET maintenance_work_mem = '512MB'; CREATE INDEX synthetic_$type ON synthetic USING hnsw ($what)"
    seconds=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
    bytes=$(sql "$db" "SELECT pg_relation_size('synthetic_$type')")
    results+=("n=$n type=$type seconds=$seconds index_mib=$((bytes / 1048576))")
    echo "HNSW over $n $type($dim): $seconds s, $((bytes / 1048576)) MiB"
    sql "$db" "DROP INDEX synthetic_$type"
  done
done

echo "per image embedding ($dim dimensions): vector $image_vector bytes, halfvec $image_halfvec bytes;" \
  "an images row $image_row bytes; an anomaly report row $report_row bytes (average of $reports)"
echo "capacity: ${results[*]}"
