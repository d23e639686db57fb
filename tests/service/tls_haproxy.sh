#!/usr/bin/env bash
# TLS as docs/api.md says: the documented docs/haproxy-tls.cfg, unchanged, in front of
# `patchvec serve`, with a self-signed certificate made here. curl checks the certificate.
#   tests/service/tls_haproxy.sh BUILD_DIR FIXTURE_DIR
set -euo pipefail
build=$(realpath "$1")
fixtures=$(realpath "$2")
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {  # a bounded wait: 100 tries, 0.1 s apart
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

data="$fixtures/patchcore/data"
patchvec="$build/patchvec"
"$patchvec" -q train --data "$data" --category synthetic --backbone resnet18 \
  --weights "$fixtures/patchcore/resnet18.safetensors" --out "$work/models"
"$patchvec" -q index --model "$work/models/synthetic.pvm" --data "$data"

backend=$(free_port)
"$patchvec" -q serve --models "$work/models" --port "$backend" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_for curl -sf "http://127.0.0.1:$backend/livez"

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/tls.pem"
tls=$(free_port)
PATCHVEC_TLS_BIND="127.0.0.1:$tls" PATCHVEC_CERT="$work/tls.pem" \
  PATCHVEC_BACKEND="127.0.0.1:$backend" haproxy -db -f "$source_dir/docs/haproxy-tls.cfg" \
  >"$work/haproxy.log" 2>&1 &
pids+=($!)
https="https://127.0.0.1:$tls"
wait_for curl -sf --cacert "$work/cert.pem" "$https/livez" || { cat "$work/haproxy.log"; exit 1; }

# Through TLS, certificate checked: health, and an inspection sent as curl sends files.
[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/cert.pem" "$https/healthz")" = 200 ]
answer=$(curl -s --cacert "$work/cert.pem" --data-binary "@$data/synthetic/test/blob/000.png" \
  "$https/v1/inspect?category=synthetic&name=tls.png")
echo "$answer" | grep -q '"verdict":"anomalous"' || { echo "inspection over TLS: $answer"; exit 1; }
# Plain HTTP to the TLS port is no answer, and an unknown certificate is refused.
! curl -sf "http://127.0.0.1:$tls/healthz" >/dev/null 2>&1
! curl -sf "$https/healthz" >/dev/null 2>&1
echo "TLS through haproxy: ok ($https -> 127.0.0.1:$backend)"
