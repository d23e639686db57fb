// One HTTP(S) download into a file, atomically and verified (libcurl).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <patchvec/weights.h>

namespace pv::weights {

struct Downloaded {
  std::string sha256;
  std::int64_t bytes = 0;
};

// Downloads `url` to `target`: into a temporary file beside it, renamed over `target` only after
// the transfer completed and its SHA-256 starts with `expected_sha256` (when not empty). On any
// failure nothing is left behind and a pv::Error says what went wrong: the host cannot be
// resolved or reached, an HTTP error status, a stalled or truncated transfer, a file larger than
// options.max_bytes, or a hash mismatch. Only http and https are followed, redirects included.
Downloaded download(const std::string& url, const std::filesystem::path& target,
                    const std::string& expected_sha256, const FetchOptions& options);

// True when `sha256` (64 hex digits) matches `expected`: the same hash or a prefix of it.
bool hash_matches(const std::string& sha256, const std::string& expected);

}  // namespace pv::weights
