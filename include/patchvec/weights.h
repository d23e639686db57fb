// Where backbone weights come from: a file, a URL downloaded once into a verified cache, or a
// name ("imagenet": torchvision's published ImageNet weights for the backbone).
//
// The cache is $XDG_CACHE_HOME/patchvec/weights (default ~/.cache/patchvec/weights). Each file
// there keeps the name of its URL's last path segment (torchvision's names, so a file copied in
// by hand is found) and a sidecar <file>.source.json: {url, sha256, bytes, fetched}. A download
// goes to a temporary file in that folder and is renamed only when complete and verified: by the
// SHA-256 in a `#sha256=<64 hex>` URL fragment, or by the hash prefix of torchvision's
// `name-<hex>.pth` convention. Nothing is downloaded that the user did not name.
//
// Environment: PATCHVEC_OFFLINE=1 never downloads; PATCHVEC_WEIGHTS_MIRROR=<base URL> fetches
// named weights from there (same file names, same hashes) instead of download.pytorch.org.
//
// Thread-safety: the functions may run concurrently, also in several processes: a download
// becomes visible only through an atomic rename.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <patchvec/error.h>

namespace pv {

// resolve_weights() could not get a URL's or a name's file onto this machine: not cached with
// downloads off, or the download failed. what() is the whole message, with what to do about it;
// reason() the cause alone ("cannot resolve host download.pytorch.org (no network or no DNS?)").
class WeightsUnavailable : public Error {
 public:
  WeightsUnavailable(const std::string& message, std::string reason)
      : Error(message), reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

struct FetchOptions {
  std::filesystem::path cache_dir;     // empty: the default above
  bool allow_download = true;          // false (or PATCHVEC_OFFLINE=1): the cache only
  double connect_timeout_seconds = 4;  // per connection attempt, name resolution included
  double stall_timeout_seconds = 30;   // abort when under 1 KB/s for this long
  std::int64_t max_bytes = 4LL << 30;  // refuse larger downloads
  bool progress = true;                // a progress bar on stderr
};

// The cache folder these options use.
std::filesystem::path weights_cache_dir(const FetchOptions& options = {});

// Weights PatchVec knows by name.
struct NamedWeights {
  std::string name;      // "imagenet"
  std::string backbone;  // "wide_resnet50_2", "resnet50", "resnet18"
  std::string url;
  std::string sha256_prefix;  // from the file name, as torchvision checks it
  std::string description;
};
std::vector<NamedWeights> named_weights();

// What a --weights value names.
struct WeightsSpec {
  enum class Kind { kRandom, kFile, kUrl, kName };
  Kind kind = Kind::kRandom;
  std::filesystem::path file;   // kFile
  std::string url;              // kUrl, kName (after the mirror)
  std::string expected_sha256;  // full hash or a prefix of one; empty = unknown
  std::string name;             // kName: "imagenet"
};

// Reads a --weights value: "" or "random" (seeded random initialisation), a name, an http(s)
// URL, or a file path. Names need the backbone. Throws pv::Error for an unknown name, a name
// with no weights for this backbone, or a malformed #sha256= fragment.
WeightsSpec parse_weights_spec(const std::string& value, const std::string& backbone);

// The local file for a --weights value: a file as it is (it must exist); a URL or name from the
// cache, downloading it when it is not there (and allowed). Empty for "random". Throws pv::Error
// with one message saying what failed and how to get the file onto this machine: offline,
// refused, HTTP errors, truncated transfers, hash mismatches (nothing is left in the cache);
// those are WeightsUnavailable.
std::filesystem::path resolve_weights(const std::string& value, const std::string& backbone,
                                      const FetchOptions& options = {});

// A file in the cache.
struct CachedWeights {
  std::filesystem::path file;
  std::string url;     // from the sidecar; empty for a file copied in by hand
  std::string sha256;  // computed now
  std::int64_t bytes = 0;
  std::string fetched;  // ISO 8601, from the sidecar
};

// Every weights file in the cache (.pth, .pt, .ckpt, .safetensors, .bin), by name.
std::vector<CachedWeights> cached_weights(const FetchOptions& options = {});

// The cached file whose SHA-256 is `sha256`, if any (how a model trained on another machine finds
// its weights here). Reads sidecars first, hashes only files without one.
std::optional<std::filesystem::path> find_cached_weights(const std::string& sha256,
                                                         const FetchOptions& options = {});

}  // namespace pv
