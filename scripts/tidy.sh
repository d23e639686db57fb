#!/bin/sh
# clang-tidy (.clang-tidy's checks) over the given sources with BUILD's compile commands, JOBS at
# a time. Prints every finding; exits 1 if there is any. Usage: scripts/tidy.sh BUILD JOBS FILE...
set -eu
build=$1
jobs=$2
shift 2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One clang-tidy per file, JOBS in parallel; headers are reported where .clang-tidy's
# HeaderFilterRegex says (include/patchvec and src), each finding once.
printf '%s\n' "$@" | xargs -P "$jobs" -n 1 clang-tidy -p "$build" --quiet 2>/dev/null >"$log" || true
findings=$(grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' "$log" | sort -u)
if [ -n "$findings" ]; then
  grep -E -A3 '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' "$log" | awk '!seen[$0]++'
  echo "clang-tidy: $(printf '%s\n' "$findings" | wc -l) findings in $# files" >&2
  exit 1
fi
echo "clang-tidy: $# files, no findings"
