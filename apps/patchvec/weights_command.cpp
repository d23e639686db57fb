// patchvec weights list|fetch|verify: the weights cache, by hand.
#include <cstdio>

#include <patchvec/embedder.h>
#include <patchvec/error.h>
#include <patchvec/log.h>
#include <patchvec/weights.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct WeightsArgs {
  std::string what;  // fetch, verify: a name, URL or file
  std::string backbone;
  bool json = false;
};

FetchOptions fetch_options(bool allow_download) {
  return {.allow_download = allow_download, .progress = !log::quiet()};
}

std::string megabytes(std::int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

// The named weights a cached file is, if any: same file name, hash prefix matching.
const NamedWeights* known_as(const CachedWeights& file) {
  static const std::vector<NamedWeights> known = named_weights();
  for (const auto& k : known) {
    if (std::filesystem::path(k.url).filename() == file.file.filename() &&
        file.sha256.starts_with(k.sha256_prefix)) {
      return &k;
    }
  }
  return nullptr;
}

std::string fit_text(const WeightsFit& fit) {
  if (!fit.problems.empty()) return "does not fit " + fit.backbone;
  return fit.backbone + (fit.prefix.empty() ? "" : " (keys under '" + fit.prefix + "')");
}

nlohmann::ordered_json fit_json(const WeightsFit& fit) {
  return {{"format", fit.format},
          {"tensors", fit.tensors},
          {"backbone", fit.problems.empty() ? nlohmann::ordered_json(fit.backbone) : nullptr},
          {"prefix", fit.prefix},
          {"problems", fit.problems}};
}

void run_list(const WeightsArgs& args) {
  const FetchOptions options = fetch_options(false);
  const auto dir = weights_cache_dir(options);
  nlohmann::ordered_json files = nlohmann::ordered_json::array();
  if (!args.json) std::printf("weights cache: %s\n", dir.c_str());
  const auto cached = cached_weights(options);
  for (const auto& c : cached) {
    WeightsFit fit;
    try {
      fit = check_weights(c.file);
    } catch (const Error& e) {
      fit.problems.push_back(e.what());
    }
    const NamedWeights* named = known_as(c);
    const std::string source = c.url.empty() ? "copied in by hand" : c.url;
    if (args.json) {
      nlohmann::ordered_json row = {
          {"file", c.file.string()},
          {"bytes", c.bytes},
          {"sha256", c.sha256},
          {"url", c.url.empty() ? nullptr : nlohmann::ordered_json(c.url)},
          {"fetched", c.fetched.empty() ? nullptr : nlohmann::ordered_json(c.fetched)},
          {"name", named ? nlohmann::ordered_json(named->name) : nullptr}};
      row.update(fit_json(fit));
      files.push_back(std::move(row));
      continue;
    }
    std::printf("  %s  %s  %s\n    backbone: %s%s\n    source: %s%s\n    sha256: %s\n",
                c.file.filename().c_str(), megabytes(c.bytes).c_str(), fit.format.c_str(),
                fit_text(fit).c_str(), named ? (" = --weights " + named->name).c_str() : "",
                source.c_str(), c.fetched.empty() ? "" : (", " + c.fetched).c_str(),
                c.sha256.c_str());
  }
  if (!args.json && cached.empty()) std::printf("  (empty)\n");
  nlohmann::ordered_json known = nlohmann::ordered_json::array();
  if (!args.json) std::printf("known names:\n");
  for (const auto& k : named_weights()) {
    const CachedWeights* here = nullptr;
    for (const auto& c : cached) {
      if (const NamedWeights* named = known_as(c); named && named->url == k.url) here = &c;
    }
    if (args.json) {
      known.push_back({{"name", k.name},
                       {"backbone", k.backbone},
                       {"url", k.url},
                       {"sha256_prefix", k.sha256_prefix},
                       {"description", k.description},
                       {"cached", here ? nlohmann::ordered_json(here->file.string()) : nullptr}});
      continue;
    }
    std::printf("  --weights %s --backbone %-16s %s, %s\n", k.name.c_str(), k.backbone.c_str(),
                k.description.c_str(), here ? "cached" : "not cached");
  }
  if (args.json) write_json("-", {{"cache", dir.string()}, {"files", files}, {"known", known}});
}

// fetch and verify: the file, its hash, and how it fits.
void run_resolve(const WeightsArgs& args, bool allow_download) {
  const std::string backbone = args.backbone.empty() ? "wide_resnet50_2" : args.backbone;
  const WeightsSpec spec = parse_weights_spec(args.what, backbone);
  if (spec.kind == WeightsSpec::Kind::kRandom) {
    throw Error("'" + args.what + "' names no weights: give a file, an http(s) URL or 'imagenet'");
  }
  const auto file = resolve_weights(args.what, backbone, fetch_options(allow_download));
  // A name checks against its backbone; a URL or file against the one asked for, else any.
  const WeightsFit fit =
      check_weights(file, spec.kind == WeightsSpec::Kind::kName ? backbone : args.backbone);
  const std::string& sha256 = fit.sha256;
  if (args.json) {
    nlohmann::ordered_json out = {
        {"file", file.string()},
        {"sha256", sha256},
        {"bytes", std::filesystem::file_size(file)},
        {"url", spec.url.empty() ? nullptr : nlohmann::ordered_json(spec.url)},
        {"expected_sha256", spec.expected_sha256}};
    out.update(fit_json(fit));
    write_json("-", out);
  }
  if (!fit.problems.empty()) {
    std::string message =
        file.string() + " (" + fit.format + ", " + std::to_string(fit.tensors) + " tensors) " +
        (args.what == file.string() ? "" : "from " + args.what + " ") + "does not fit backbone " +
        (fit.backbone.empty() ? "any backbone" : fit.backbone) + ":";
    for (std::size_t i = 0; i < fit.problems.size() && i < 8; ++i) {
      message += "\n  " + fit.problems[i];
    }
    if (fit.problems.size() > 8) {
      message += "\n  ... and " + std::to_string(fit.problems.size() - 8) + " more";
    }
    if (!fit.backbone.empty()) {
      const WeightsFit other = check_weights(file);
      if (other.problems.empty()) message += "\nThe file fits backbone " + other.backbone + ".";
    }
    throw Error(message);
  }
  if (args.json) return;
  std::printf("%s\n  %s, %zu tensors, fits %s\n  SHA-256 %s%s\n", file.c_str(), fit.format.c_str(),
              fit.tensors, fit_text(fit).c_str(), sha256.c_str(),
              spec.expected_sha256.empty()
                  ? ""
                  : (spec.expected_sha256.size() < 64
                         ? " (verified: starts with " + spec.expected_sha256 + ")"
                         : std::string(" (verified)"))
                        .c_str());
  if (spec.kind != WeightsSpec::Kind::kFile) {
    std::printf("  use it as: --weights %s%s\n", args.what.c_str(),
                spec.kind == WeightsSpec::Kind::kName ? (" --backbone " + backbone).c_str() : "");
  }
}

}  // namespace

void add_weights_command(CLI::App& app) {
  auto args = std::make_shared<WeightsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "weights", "The backbone weights cache: list it, fetch weights ahead of time, verify a file");
  cmd->require_subcommand(1);
  cmd->footer(R"(
The cache is $XDG_CACHE_HOME/patchvec/weights (default ~/.cache/patchvec/weights). Every command
that takes --weights uses it: a URL or a name is downloaded once, verified, and reused offline.
PATCHVEC_OFFLINE=1 forbids downloads; PATCHVEC_WEIGHTS_MIRROR=<base URL> fetches named weights
from a mirror holding torchvision's files.
Examples:
  patchvec weights fetch imagenet --backbone wide_resnet50_2   # where there is internet
  patchvec weights list
  patchvec weights verify my_backbone.pth                       # which backbone, does it load)");
  const auto common = [&](CLI::App* sub) {
    sub->add_option("--backbone", args->backbone,
                    "The backbone the weights are for (names need it; default wide_resnet50_2)")
        ->check(CLI::IsMember(supported_backbones()));
    sub->add_flag("--json", args->json, "Print JSON on stdout");
  };

  CLI::App* list = cmd->add_subcommand(
      "list", "The cached files (backbone they fit, source, SHA-256, size) and the known names");
  list->add_flag("--json", args->json, "Print JSON on stdout");
  list->callback([args] { run_list(*args); });

  CLI::App* fetch = cmd->add_subcommand(
      "fetch", "Download weights into the cache now (a name or an http(s) URL) and check them");
  fetch->add_option("weights", args->what, "'imagenet' or an http(s) URL (#sha256=<hex> verifies)")
      ->required();
  common(fetch);
  fetch->callback([args] { run_resolve(*args, /*allow_download=*/true); });

  CLI::App* verify = cmd->add_subcommand(
      "verify",
      "Check a weights file (or a cached URL or name) without downloading: it parses, fits the "
      "backbone, and matches its expected SHA-256");
  verify->add_option("weights", args->what, "A file, a cached URL, or 'imagenet'")->required();
  common(verify);
  verify->callback([args] { run_resolve(*args, /*allow_download=*/false); });
}

}  // namespace pv::cli
