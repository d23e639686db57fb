#include "cli_common.h"

#include <cmath>
#include <cstdio>
#include <iostream>

#include <opencv2/imgproc.hpp>

#include <patchvec/dataset.h>

#include "image/render.h"
#include "inspect/inspection_json.h"
#include "util/files.h"

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

nlohmann::ordered_json number_or_null(double value) {
  return std::isnan(value) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(value);
}

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

nlohmann::ordered_json to_json(const PredictTimings& t) {
  const double per_image = t.images > 0 ? 1000.0 / static_cast<double>(t.images) : 0;
  return {{"images", t.images},
          {"read_s", t.read_seconds},
          {"backbone_s", t.backbone_seconds},
          {"search_s", t.search_seconds},
          {"map_s", t.map_seconds},
          {"ms_per_image",
           {{"read", t.read_seconds * per_image},
            {"backbone", t.backbone_seconds * per_image},
            {"search", t.search_seconds * per_image},
            {"map", t.map_seconds * per_image}}}};
}

nlohmann::ordered_json operating_points_json(const EvaluationReport& report) {
  const auto point = [](const OperatingPoint& p) {
    return nlohmann::ordered_json{{"threshold", p.threshold},
                                  {"false_alarm_rate", p.false_alarm_rate},
                                  {"detection_rate", p.detection_rate}};
  };
  nlohmann::ordered_json used = point(report.at_used);
  used["method"] = threshold_method_name(report.used.method);
  return {{"in_use", used}, {"f1_optimal", point(report.at_f1)}};
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

nlohmann::ordered_json to_json(const EvaluationReport& report) {
  nlohmann::ordered_json images = nlohmann::ordered_json::object();
  for (const auto& image : report.images) {
    images[image.relative_path] = {{"score", image.score},
                                   {"normalized", image.normalized},
                                   {"label", image.label},
                                   {"defect", image.defect},
                                   {"verdict", image.anomalous ? "anomalous" : "normal"}};
  }
  nlohmann::ordered_json timings = to_json(report.timings);
  timings["metrics_s"] = report.metrics_seconds;
  timings["total_s"] = report.seconds;
  return {
      {"category", report.category},
      {"image_auroc", report.image_auroc},
      {"pixel_auroc", number_or_null(report.pixel_auroc)},
      {"pro", number_or_null(report.pro)},
      {"image_threshold", report.used.image},
      {"pixel_threshold", report.used.pixel},
      {"threshold_source", report.used_model_thresholds ? "model" : "this evaluation"},
      {"f1_optimal",
       {{"image_threshold", report.computed.image}, {"pixel_threshold", report.computed.pixel}}},
      {"image_f1", report.image_f1},
      {"threshold_method", threshold_method_name(report.used.method)},
      {"threshold_description", report.used.source},
      {"operating_points", operating_points_json(report)},
      {"defect_precision_at_5", number_or_null(report.defect_precision_at_5)},
      {"defect_precision_at_5_mean_pooling",
       number_or_null(report.defect_precision_at_5_mean_pooling)},
      {"normalization",
       {{"image_min", report.used.image_min},
        {"image_max", report.used.image_max},
        {"pixel_min", report.used.pixel_min},
        {"pixel_max", report.used.pixel_max}}},
      {"images", images},
      {"timings", timings}};
}

nlohmann::ordered_json thresholds_json(const Thresholds& t) {
  return {{"image", t.image},
          {"pixel", t.pixel},
          {"method", threshold_method_name(t.method)},
          {"false_alarm_rate", t.method == ThresholdMethod::kFalseAlarmRate
                                   ? nlohmann::ordered_json(t.false_alarm_rate)
                                   : nlohmann::ordered_json()},
          {"good_images", t.good_images},
          {"source", t.source}};
}

std::vector<std::filesystem::path> expand_images(const std::vector<std::string>& arguments) {
  std::vector<std::filesystem::path> paths;
  for (const auto& argument : arguments) {
    if (std::filesystem::is_directory(argument)) {
      const auto inside = list_images(argument);
      paths.insert(paths.end(), inside.begin(), inside.end());
    } else {
      paths.emplace_back(argument);
    }
  }
  return paths;
}

std::filesystem::path write_heatmap(const std::filesystem::path& folder,
                                    const std::filesystem::path& image, const Model& model,
                                    const Prediction& p) {
  const ModelInfo& info = model.info();
  const Image original = load_image(image);
  constexpr int kHeight = 360;
  const std::vector<float> normalized = model.normalize_map(p.map);
  char caption[256];
  const std::string name = (image.parent_path().filename() / image.filename()).string();
  std::snprintf(caption, sizeof caption, "%s   score %.3f   %s", name.c_str(), p.score,
                std::isnan(p.normalized) ? "no threshold" : (p.anomalous ? "ANOMALOUS" : "normal"));
  // At the image's own size and aspect: the map is mapped back onto the part the model saw.
  const cv::Mat picture =
      render::panels({render::scaled_original(original, kHeight),
                      render::original_overlay(original, normalized, p.map.width, p.map.height,
                                               info.image_size, info.crop_size, kHeight)},
                     {"image", "anomaly map (dimmed: cropped away, not inspected)"}, caption,
                     p.anomalous ? cv::Scalar(90, 90, 255) : cv::Scalar(120, 220, 120));
  std::filesystem::create_directories(folder);
  // Folder and name: test/scratch/000.png and test/good/000.png must not overwrite each other.
  const auto parent = image.parent_path().filename().string();
  const auto path =
      folder / ((parent.empty() ? "" : parent + "_") + image.stem().string() + "_heatmap.png");
  render::write_png(path, picture);
  return path;
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
  if (!r.anomalous) {
    std::fprintf(out, "Normal image (%s; best similarity %.4f) - top %zu similar normal images:\n",
                 r.reason.c_str(), r.best_similarity, r.matches.size());
  } else if (r.report_id) {
    std::fprintf(out, "ANOMALY (%s) - reported as #%lld. Closest known defects:\n",
                 r.reason.c_str(), static_cast<long long>(*r.report_id));
  } else {
    std::fprintf(out, "ANOMALY (%s). Closest known defects:\n", r.reason.c_str());
  }
  if (r.anomalous && r.matches.empty()) std::fprintf(out, "  (no labelled defects stored yet)\n");
  for (const Match& m : r.matches) {
    std::fprintf(out, "  %-44s | %-7s | %-9s | %-19s | sim=%.4f\n",
                 shown(m.image.path, base).c_str(), m.image.category.c_str(),
                 m.image.anomalous ? "anomalous" : "normal", m.image.defect.c_str(), m.similarity);
  }
}

nlohmann::ordered_json to_json(const Inspection& r) {
  return json::inspection(r);
}

}  // namespace pv::cli
