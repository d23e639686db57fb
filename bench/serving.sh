# Sourced by the benchmarks that load `patchvec serve`: one server at a time, always stopped on
# exit.
#   start_server BINARY MODELS_DIR LOG   starts it on a free port: sets $server (its pid) and $url
#   stop_server                          stops it
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null; wait 2>/dev/null || true' EXIT
start_server() {
  "$1" -q serve --models "$2" --port 0 >"$3" 2>&1 &
  server=$!
  url=""
  for _ in $(seq 300); do
    url=$(grep -o 'http://[0-9.:]*/' "$3" || true)
    [ -n "$url" ] && break
    sleep 0.2
  done
  [ -n "$url" ] || { cat "$3"; exit 1; }
}
stop_server() {
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=""
}
