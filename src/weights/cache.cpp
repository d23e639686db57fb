// Named weights, --weights values, and the download cache (see include/patchvec/weights.h).
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>

#include <nlohmann/json.hpp>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/log.h>
#include <patchvec/weights.h>

#include "util/clock.h"
#include "util/sha256.h"
#include "weights/download.h"

namespace pv {
namespace {

constexpr const char* kTorchvisionModels = "https://download.pytorch.org/models/";
constexpr const char* kSidecarSuffix = ".source.json";

bool env_flag(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' && std::string(value) != "0";
}

bool is_hex(const std::string& text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// The last path segment of a URL, without query or fragment.
std::string url_file_name(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  const auto scheme = path.find("://");
  const auto first_slash = path.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (first_slash == std::string::npos) return "";
  return path.substr(path.rfind('/') + 1);
}

// The cache's name for a URL's file: its last segment, with anything unusual replaced.
std::string cache_name(const std::string& url) {
  std::string name = url_file_name(url);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  }
  if (name.empty() || name.front() == '.') name = "weights" + name;
  return name.substr(0, 200);
}

// torchvision's convention: "<name>-<first hex digits of the SHA-256>.<ext>".
std::string hash_prefix_in_name(const std::string& file_name) {
  const auto dash = file_name.rfind('-');
  if (dash == std::string::npos) return "";
  const auto dot = file_name.find('.', dash);
  const std::string digits = lower(
      file_name.substr(dash + 1, dot == std::string::npos ? std::string::npos : dot - dash - 1));
  return digits.size() >= 8 && digits.size() <= 64 && is_hex(digits) ? digits : "";
}

std::filesystem::path sidecar_of(const std::filesystem::path& file) {
  return file.string() + kSidecarSuffix;
}

struct Sidecar {
  std::string url;
  std::string sha256;
  std::int64_t bytes = -1;
  std::string fetched;
};

// A sidecar as written by this cache; nullopt when absent or unreadable (then ignored: the file
// is judged by its hash alone).
std::optional<Sidecar> read_sidecar(const std::filesystem::path& file) {
  const auto path = sidecar_of(file);
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return std::nullopt;
  try {
    const auto bytes = read_file(path, 1 << 16);
    const auto json = nlohmann::json::parse(bytes.begin(), bytes.end());
    Sidecar s;
    s.url = json.at("url").get<std::string>();
    s.sha256 = json.at("sha256").get<std::string>();
    s.bytes = json.at("bytes").get<std::int64_t>();
    s.fetched = json.value("fetched", "");
    if (s.sha256.size() != 64 || !is_hex(s.sha256)) return std::nullopt;
    return s;
  } catch (const std::exception&) {
    log::warn("ignoring unreadable cache record " + path.string());
    return std::nullopt;
  }
}

void write_sidecar(const std::filesystem::path& file, const Sidecar& s) {
  const nlohmann::ordered_json json = {
      {"url", s.url}, {"sha256", s.sha256}, {"bytes", s.bytes}, {"fetched", s.fetched}};
  AtomicFile out(sidecar_of(file));
  out.write(json.dump(2) + "\n");
  out.commit();
}

bool is_weights_file(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  if (name.starts_with(".")) return false;
  for (const char* ext : {".pth", ".pt", ".ckpt", ".safetensors", ".bin"}) {
    if (name.ends_with(ext)) return true;
  }
  return false;
}

std::string how_to_get_it(const WeightsSpec& spec, const std::string& value,
                          const std::string& backbone, const std::filesystem::path& target) {
  const std::string fetch = spec.kind == WeightsSpec::Kind::kName
                                ? "patchvec weights fetch " + value + " --backbone " + backbone
                                : "patchvec weights fetch '" + value + "'";
  return "\nTo get it onto this machine: run `" + fetch +
         "` where there is internet (or download " + spec.url +
         " any way you like), then copy the file to " + target.string() +
         " here; or pass --weights with the file's path.";
}

}  // namespace

std::filesystem::path weights_cache_dir(const FetchOptions& options) {
  return options.cache_dir.empty() ? user_cache_dir("weights") : options.cache_dir;
}

std::vector<NamedWeights> named_weights() {
  // torchvision's IMAGENET1K_V1 weights (torchvision/models/resnet.py): what PatchCore's paper
  // and anomalib (through timm's tv_in1k tags) use.
  const auto entry = [](const char* backbone, const char* file, const char* description) {
    return NamedWeights{.name = "imagenet",
                        .backbone = backbone,
                        .url = std::string(kTorchvisionModels) + file,
                        .sha256_prefix = hash_prefix_in_name(file),
                        .description = description};
  };
  return {
      entry("wide_resnet50_2", "wide_resnet50_2-95faca4d.pth",
            "torchvision IMAGENET1K_V1 (top-1 78.5%), 132 MB"),
      entry("resnet50", "resnet50-0676ba61.pth", "torchvision IMAGENET1K_V1 (top-1 76.1%), 98 MB"),
      entry("resnet18", "resnet18-f37072fd.pth", "torchvision IMAGENET1K_V1 (top-1 69.8%), 45 MB")};
}

WeightsSpec parse_weights_spec(const std::string& value, const std::string& backbone) {
  WeightsSpec spec;
  if (value.empty() || value == "random") return spec;
  if (value.starts_with("http://") || value.starts_with("https://")) {
    spec.kind = WeightsSpec::Kind::kUrl;
    spec.url = value;
    const auto hash = value.find('#');
    if (hash != std::string::npos) {
      const std::string fragment = value.substr(hash + 1);
      if (!fragment.starts_with("sha256=")) {
        throw Error("--weights " + value + ": the only URL fragment understood is #sha256=<hex>");
      }
      spec.expected_sha256 = lower(fragment.substr(7));
      if (spec.expected_sha256.size() != 64 || !is_hex(spec.expected_sha256)) {
        throw Error("--weights " + value + ": #sha256= needs the 64 hex digits of a SHA-256");
      }
      spec.url = value.substr(0, hash);
    } else {
      spec.expected_sha256 = hash_prefix_in_name(url_file_name(value));
    }
    if (url_file_name(spec.url).empty()) {
      throw Error("--weights " + value + ": the URL names no file");
    }
    return spec;
  }
  const std::string name = lower(value);
  if ((name == "imagenet" || name == "imagenet1k_v1") && !std::filesystem::exists(value)) {
    for (const auto& known : named_weights()) {
      if (known.backbone != backbone) continue;
      spec.kind = WeightsSpec::Kind::kName;
      spec.name = "imagenet";
      spec.url = known.url;
      if (const char* mirror = std::getenv("PATCHVEC_WEIGHTS_MIRROR"); mirror && *mirror) {
        std::string base = mirror;
        if (!base.ends_with('/')) base += '/';
        spec.url = base + url_file_name(known.url);
      }
      spec.expected_sha256 = known.sha256_prefix;
      return spec;
    }
    throw Error("--weights imagenet: no ImageNet weights are known for backbone '" + backbone +
                "'");
  }
  spec.kind = WeightsSpec::Kind::kFile;
  spec.file = value;
  return spec;
}

namespace {

// resolve_weights() for a URL or a name.
std::filesystem::path fetch_into_cache(const WeightsSpec& spec, const std::string& value,
                                       const std::string& backbone, const FetchOptions& options) {
  const std::filesystem::path dir = weights_cache_dir(options);
  std::filesystem::path target = dir / cache_name(spec.url);
  const std::string label = spec.kind == WeightsSpec::Kind::kName
                                ? "weights '" + spec.name + "' for " + backbone
                                : "weights " + spec.url;
  const auto sidecar = read_sidecar(target);
  std::error_code error;
  bool stale = false;  // the cache holds the file, but not with the expected hash
  if (std::filesystem::is_regular_file(target, error)) {
    const std::string actual = sha256_file_hex(target);
    const bool same_source = !sidecar || sidecar->url == spec.url;
    const bool verified = !spec.expected_sha256.empty();
    const bool good = verified ? weights::hash_matches(actual, spec.expected_sha256)
                               : (!sidecar || sidecar->sha256 == actual);
    // A verified file serves any URL (a mirror); an unverified one only its own.
    if (good && (same_source || verified)) return target;
    if (!same_source) {
      throw Error(label + ": the cache already holds a different " + target.filename().string() +
                  " (from " + sidecar->url + "); remove " + target.string() +
                  " or give the URL a #sha256= fragment");
    }
    stale = true;
  }
  const bool allowed = options.allow_download && !env_flag("PATCHVEC_OFFLINE");
  if (!allowed) {
    const std::string expected = spec.expected_sha256.empty()
                                     ? "the one recorded when it was fetched"
                                     : "one starting with " + spec.expected_sha256;
    const std::string off =
        options.allow_download ? "PATCHVEC_OFFLINE forbids downloads" : "downloads are off";
    throw WeightsUnavailable(
        label +
            (stale ? ": the cached " + target.string() + "'s SHA-256 is not " + expected
                   : " are not in the cache (" + target.string() + ")") +
            ", and downloads are off" + (options.allow_download ? " (PATCHVEC_OFFLINE)." : ".") +
            how_to_get_it(spec, value, backbone, target),
        (stale ? "the cached file is not the expected one, and " : "not cached, and ") + off);
  }
  if (stale)
    log::warn("cached " + target.string() +
              " does not match its expected SHA-256; fetching it again");
  std::filesystem::create_directories(dir, error);
  if (error)
    throw Error("cannot create the weights cache " + dir.string() + ": " + error.message());
  log::info(spec.kind == WeightsSpec::Kind::kName ? "fetching " + label + " from " + spec.url
                                                  : "fetching " + spec.url);
  weights::Downloaded downloaded;
  try {
    downloaded = weights::download(spec.url, target, spec.expected_sha256, options);
  } catch (const Error& e) {
    const auto* unavailable = dynamic_cast<const WeightsUnavailable*>(&e);
    throw WeightsUnavailable(
        (spec.kind == WeightsSpec::Kind::kName ? label + ": " : std::string()) + e.what() +
            how_to_get_it(spec, value, backbone, target),
        unavailable ? unavailable->reason() : e.what());
  }
  write_sidecar(target, {.url = spec.url,
                         .sha256 = downloaded.sha256,
                         .bytes = downloaded.bytes,
                         .fetched = utc_now()});
  log::info("cached " + target.string() + " (SHA-256 " + downloaded.sha256 + ")");
  return target;
}

}  // namespace

std::filesystem::path resolve_weights(const std::string& value, const std::string& backbone,
                                      const FetchOptions& options) {
  const WeightsSpec spec = parse_weights_spec(value, backbone);
  switch (spec.kind) {
    case WeightsSpec::Kind::kRandom:
      return {};
    case WeightsSpec::Kind::kFile: {
      std::error_code error;
      if (!std::filesystem::is_regular_file(spec.file, error)) {
        throw Error("weights file " + spec.file.string() +
                    " does not exist (--weights takes a file, an http(s) URL, 'imagenet' or "
                    "'random')");
      }
      return spec.file;
    }
    case WeightsSpec::Kind::kUrl:
    case WeightsSpec::Kind::kName:
      break;
  }
  // Whatever keeps the file from this machine (no cache folder, a clash in it) is "unavailable".
  try {
    return fetch_into_cache(spec, value, backbone, options);
  } catch (const WeightsUnavailable&) {
    throw;
  } catch (const Error& e) {
    throw WeightsUnavailable(e.what(), e.what());
  }
}

std::vector<CachedWeights> cached_weights(const FetchOptions& options) {
  const auto dir = weights_cache_dir(options);
  std::vector<CachedWeights> found;
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) return found;
  for (const auto& item : std::filesystem::directory_iterator(dir, error)) {
    if (!item.is_regular_file(error) || !is_weights_file(item.path())) continue;
    CachedWeights c{.file = item.path(),
                    .sha256 = sha256_file_hex(item.path()),
                    .bytes = static_cast<std::int64_t>(item.file_size(error))};
    if (const auto s = read_sidecar(item.path())) {
      c.url = s->url;
      c.fetched = s->fetched;
    }
    found.push_back(std::move(c));
  }
  std::sort(found.begin(), found.end(),
            [](const CachedWeights& a, const CachedWeights& b) { return a.file < b.file; });
  return found;
}

std::optional<std::filesystem::path> find_cached_weights(const std::string& sha256,
                                                         const FetchOptions& options) {
  std::filesystem::path dir;
  try {
    dir = weights_cache_dir(options);
  } catch (const Error&) {
    return std::nullopt;
  }
  std::error_code error;
  if (sha256.size() != 64 || !std::filesystem::is_directory(dir, error)) return std::nullopt;
  std::vector<std::filesystem::path> unrecorded;
  for (const auto& item : std::filesystem::directory_iterator(dir, error)) {
    if (!item.is_regular_file(error) || !is_weights_file(item.path())) continue;
    const auto s = read_sidecar(item.path());
    if (!s) {
      unrecorded.push_back(item.path());
    } else if (s->sha256 == sha256 && sha256_file_hex(item.path()) == sha256) {
      return item.path();
    }
  }
  for (const auto& path : unrecorded) {
    if (sha256_file_hex(path) == sha256) return path;
  }
  return std::nullopt;
}

}  // namespace pv
