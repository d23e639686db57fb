#!/bin/sh
# apps/ see the library through its public headers only: <patchvec/...>, the standard library,
# POSIX, CLI11 and nlohmann-json, and their own headers. No src/ header, no OpenCV, no libtorch.
# Prints each offending line and exits 1; run by `make test` (ctest: layout.apps_public_headers).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bad=$(grep -n '^#include' "$root"/apps/*/*.cpp "$root"/apps/*/*.h |
  grep -v -E '#include <patchvec/[a-z_]+\.h>|#include "[a-z_]+\.h"$|#include <[a-z_]+>|#include <(sys/)?[a-z_]+\.h>|#include <CLI/CLI\.hpp>|#include <nlohmann/json\.hpp>' |
  grep -v -E '"(util|image|inspect|nn|patchcore|store|service|eval|train|search|sampling|synth|data|weights|station)/' || true)
private=$(grep -n -E '^#include "(util|image|inspect|nn|patchcore|store|service|eval|train|search|sampling|synth|data|weights|station)/' \
  "$root"/apps/*/*.cpp "$root"/apps/*/*.h || true)
if [ -n "$bad$private" ]; then
  echo "apps/ must include only public headers (<patchvec/...>) and standard ones:" >&2
  printf '%s\n%s\n' "$bad" "$private" | sed '/^$/d' >&2
  exit 1
fi
echo "apps/: public headers only"
