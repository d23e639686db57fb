#!/usr/bin/env bash
# Loading the vector store: 200 images' embeddings plus a ~20,000-vector memory bank into
# PostgreSQL + pgvector (binary COPY, one transaction), then the HNSW indexes, timed apart.
# The embedded store is timed on the same data for comparison.
set -euo pipefail
build=${1:-build}
patchvec="$build/patchvec"
work="$build/bench-data/store"
mkdir -p "$work"

if [ ! -e "$work/models/tile.pvm" ]; then
  "$patchvec" -q synth --out "$work/data" --categories tile --train 200 --test-good 0 --test-bad 0
  # 200 x 784 patches x 0.128 = 20,070 bank vectors.
  "$patchvec" -q train --data "$work/data" --category tile --coreset-ratio 0.128 --no-thresholds \
    --out "$work/models"
fi

url=$(scripts/pgvector-server.sh start)
admin() { PGCONNECT_TIMEOUT=10 timeout 60 psql -X -q "$url" -c "$1"; }
admin "DROP DATABASE IF EXISTS bench_store WITH (FORCE)"
admin "CREATE DATABASE bench_store"
db="${url%/*}/bench_store"

"$patchvec" -q index --model "$work/models/tile.pvm" --data "$work/data" --db "$db" --json "$work/pg.json"
"$patchvec" -q index --model "$work/models/tile.pvm" --data "$work/data" --store "$work/store.pvs" \
  --json "$work/embedded.json"
/usr/bin/python3 - "$work/pg.json" "$work/embedded.json" <<'PY'
import json, sys
pg, embedded = (json.load(open(p)) for p in sys.argv[1:])
c = pg["categories"][0]
print(f"pgvector: {c['images']} images + {c['patches']} bank vectors loaded in {c['load_seconds']:.2f} s "
      f"(target < 10 s); HNSW indexes built in {pg['index_seconds']:.1f} s; "
      f"embedding the images took {c['embed_seconds']:.1f} s")
e = embedded["categories"][0]
print(f"embedded store: {e['images']} images loaded in {e['load_seconds']*1000:.0f} ms")
PY
admin "DROP DATABASE bench_store WITH (FORCE)"
