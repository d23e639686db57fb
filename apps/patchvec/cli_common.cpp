#include "cli_common.h"

#include <cmath>
#include <cstdio>
#include <iostream>

#include <patchvec/dataset.h>
#include <patchvec/files.h>
#include <patchvec/training.h>

namespace pv::cli {

const char* const kWeightsHelp =
    "The backbone's weights: 'imagenet' (torchvision's, downloaded once into "
    "~/.cache/patchvec/weights and verified), an http(s) URL (the same cache; #sha256=<hex> "
    "verifies it), or a file: .safetensors, a PyTorch .pth/.pt state_dict or a Lightning .ckpt. "
    "None or 'random': a random backbone whose BatchNorm statistics are re-estimated on the "
    "training images (far less accurate)";

void add_embedder_options(CLI::App& command, EmbedderOptions& options) {
  command
      .add_option("--backbone", options.backbone,
                  "wide_resnet50_2 (1536-d patches), resnet50 (1536-d) or resnet18 (384-d)")
      ->capture_default_str()
      ->check(CLI::IsMember(supported_backbones()));
  command.add_option("--weights", options.weights, kWeightsHelp);
  command.add_option("--image-size", options.image_size, "Resize images to this square size")
      ->capture_default_str();
  command.add_option("--crop-size", options.crop_size, "Centre crop after resizing (0 = none)")
      ->capture_default_str();
  command.add_option("--batch-size", options.batch_size, "Images per forward pass")
      ->capture_default_str();
  command.add_option("--threads", options.threads, "Compute threads (0 = one per core)")
      ->capture_default_str();
  add_image_limit_option(command, options.image_limits);
}

void add_tiling_options(CLI::App& command, TilingOptions& options) {
  command
      .add_option("--tile", options.size,
                  "Cut each image into tiles of this many pixels (at --tile-scale of its own "
                  "resolution) instead of resizing it to --image-size: for high-resolution "
                  "images with small defects. Each tile is a network input; maps are stitched "
                  "(0 = no tiling)")
      ->capture_default_str();
  command
      .add_option("--tile-overlap", options.overlap,
                  "Pixels neighbouring tiles share (blended in the map)")
      ->capture_default_str();
  command
      .add_option("--tile-scale", options.scale,
                  "Resize images by this factor before tiling (1 = native resolution)")
      ->capture_default_str();
}

void add_tiling_override_options(CLI::App& command, TilingOverride& options) {
  command.add_option("--tile", options.size,
                     "Tiles of this many pixels instead of the model's (default: as trained)");
  command.add_option("--tile-overlap", options.overlap,
                     "Pixels neighbouring tiles share (default: as trained)");
  command.add_option("--tile-scale", options.scale,
                     "Resize factor before tiling (default: as trained; keep it so)");
}

void add_store_options(CLI::App& command, StoreLocation& location) {
  command.add_option("--db", location.db,
                     "PostgreSQL + pgvector: a libpq URL, postgresql://user:pass@host:port/db (PG* "
                     "environment variables fill in what it leaves out)");
  command.add_option(
      "--store", location.file,
      "Embedded store file (default: store.pvs beside the model) when --db is not given");
  command.add_flag(
      "--exact", location.exact,
      "PostgreSQL: exact scans instead of the HNSW index (the embedded store is exact)");
}

std::filesystem::path store_beside(const std::filesystem::path& model) {
  return model.empty() ? std::filesystem::path() : model.parent_path() / "store.pvs";
}

void add_image_limit_option(CLI::App& command, ImageLimits& limits) {
  command
      .add_option("--max-pixels", limits.max_pixels,
                  "Largest image to read, in pixels (width x height), checked from its header; "
                  "each pixel needs ~24 bytes while it is read")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

void add_model_load_options(CLI::App& command, ModelLoadOptions& options) {
  command.add_option(
      "--weights", options.weights,
      "The backbone's weights (a file, URL or 'imagenet'), if they are neither where "
      "training found them nor in the weights cache (checked by SHA-256)");
  command.add_option("--threads", options.threads, "Compute threads (0 = one per core)");
  command.add_option("--batch-size", options.batch_size, "Images per forward pass")
      ->capture_default_str();
  add_image_limit_option(command, options.image_limits);
  add_run_precision_option(command, options.precision);
  add_search_option(command, options.search);
}

void add_search_option(CLI::App& command, SearchMethod& method) {
  command
      .add_option_function<std::string>(
          "--search",
          [&method](const std::string& name) { method = parse_search_method(name, "--search"); },
          "How each patch's nearest bank patch is found: exact, shortlist (an estimate in the "
          "bank's principal components, then exact distances; image scores stay exact, a map "
          "patch whose neighbour is missed shows a larger distance), or auto (default: shortlist "
          "for banks of 32,768 patches or more)")
      ->check(CLI::IsMember({"exact", "shortlist", "auto"}));
}

void add_run_precision_option(CLI::App& command, std::optional<Precision>& precision) {
  command
      .add_option_function<std::string>(
          "--precision",
          [&precision](const std::string& name) {
            precision = parse_precision(name, "--precision");
          },
          "Compute in the model's own precision (default), fp32 (the exact reference, for any "
          "model), or auto (its own where this CPU runs it natively, else fp32). A model runs in "
          "no other reduced precision: that was never checked against its thresholds")
      ->check(CLI::IsMember({"fp32", "bf16", "int8", "auto"}));
}

std::string search_line(const Model& model) {
  if (model.search_method() != SearchMethod::kShortlist) return "";
  std::string line = "search: shortlist over the " + std::to_string(model.info().bank_size) +
                     "-patch bank (image scores exact; --search exact for exact maps)";
  if (const auto& c = model.info().shortlist_check) {
    char numbers[200];
    std::snprintf(numbers, sizeof(numbers),
                  "; at training, %lld held-out images: recall@1 %.5f of %lld patches, a missed "
                  "patch's distance at most %.1e too large, %lld image scores differed",
                  static_cast<long long>(c->images), c->recall_at_1,
                  static_cast<long long>(c->patches), c->max_relative_error,
                  static_cast<long long>(c->score_differences));
    line += numbers;
  }
  return line;
}

std::string precision_line(const Model& model) {
  const ModelInfo& info = model.info();
  const Precision own = info.backbone.precision;
  if (own == Precision::kFloat32 && model.precision() == Precision::kFloat32) return "";
  std::string line = "precision: trained in " + std::string(precision_name(own)) + ", running in " +
                     precision_name(model.precision());
  if (info.agreement) line += "; agreement with fp32 at training: " + describe(*info.agreement);
  return line;
}

void write_json(const std::string& path, const nlohmann::ordered_json& json) {
  const std::string text = json.dump(2) + "\n";
  if (path == "-") {
    std::cout << text;
    return;
  }
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

namespace {

std::string cell(double value) {
  if (std::isnan(value)) return "    -";
  char text[16];
  std::snprintf(text, sizeof text, "%.3f", value);
  return text;
}

}  // namespace

void print_table(std::FILE* out, const std::vector<EvaluationReport>& reports) {
  std::fprintf(out, "\n%-14s %11s %11s %8s\n", "category", "image AUROC", "pixel AUROC", "PRO");
  std::fprintf(out, "%-14s %11s %11s %8s\n", "--------", "-----------", "-----------", "---");
  double image = 0, pixel = 0, pro = 0;
  int pixel_count = 0;
  for (const auto& r : reports) {
    std::fprintf(out, "%-14s %11s %11s %8s\n", r.category.c_str(), cell(r.image_auroc).c_str(),
                 cell(r.pixel_auroc).c_str(), cell(r.pro).c_str());
    image += r.image_auroc;
    if (!std::isnan(r.pixel_auroc)) {
      pixel += r.pixel_auroc;
      pro += r.pro;
      ++pixel_count;
    }
  }
  if (reports.size() > 1) {
    const double n = static_cast<double>(reports.size());
    std::fprintf(out, "%-14s %11s %11s %8s\n", "mean", cell(image / n).c_str(),
                 cell(pixel_count ? pixel / pixel_count : NAN).c_str(),
                 cell(pixel_count ? pro / pixel_count : NAN).c_str());
  }
  std::fprintf(out, "\n");
}

std::FILE* human_output(const std::string& json_target) {
  return json_target == "-" ? stderr : stdout;
}

void print_operating_points(std::FILE* out, const EvaluationReport& report) {
  const auto line = [&](const char* name, const OperatingPoint& p) {
    std::fprintf(out,
                 "  %-22s threshold %9.4g: false alarms %5.1f %% of good, detected %5.1f %% of "
                 "defective\n",
                 name, p.threshold, 100 * p.false_alarm_rate, 100 * p.detection_rate);
  };
  const std::string in_use =
      std::string("in use (") + threshold_method_name(report.used.method) + ")";
  line(in_use.c_str(), report.at_used);
  line("f1-optimal", report.at_f1);
}

namespace {

std::string shown(const std::string& path, const std::filesystem::path& base) {
  if (base.empty()) return path;
  return std::filesystem::path(path).lexically_relative(base).string();
}

}  // namespace

void print_inspection(std::FILE* out, const Inspection& r, const std::string& truth,
                      const std::filesystem::path& base) {
  std::fprintf(out, "\nQuery: %s (%s%s%s)\n", shown(r.path, base).c_str(), r.category.c_str(),
               truth.empty() ? "" : "; really ", truth.c_str());
  if (r.verdict == Verdict::kNormal && !r.note.empty()) {
    std::fprintf(out, "Normal image (%s)\n", r.reason.c_str());
  } else if (r.verdict == Verdict::kNormal) {
    std::fprintf(out, "Normal image (%s; best similarity %.4f) - top %zu similar normal images:\n",
                 r.reason.c_str(), r.best_similarity, r.matches.size());
  } else if (r.report_id) {
    std::fprintf(out, "ANOMALY (%s) - reported as #%lld. Closest known defects:\n",
                 r.reason.c_str(), static_cast<long long>(*r.report_id));
  } else {
    std::fprintf(out, "ANOMALY (%s). Closest known defects:\n", r.reason.c_str());
  }
  if (!r.note.empty()) {
    std::fprintf(out, "  (%s)\n", r.note.c_str());
  } else if (r.verdict == Verdict::kAnomalous && r.matches.empty()) {
    std::fprintf(out, "  (no labelled defects stored yet)\n");
  }
  for (const Match& m : r.matches) {
    std::fprintf(out, "  %-44s | %-7s | %-9s | %-19s | sim=%.4f\n",
                 shown(m.image.path, base).c_str(), m.image.category.c_str(),
                 verdict_name(verdict_of(m.image.anomalous)), m.image.defect.c_str(), m.similarity);
  }
}

}  // namespace pv::cli
