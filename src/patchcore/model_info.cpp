// A model's metadata as its file's JSON header holds it (model_file.h), read strictly.
#include "patchcore/model_info.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>

#include "patchcore/anomaly_map.h"
#include "util/json_numbers.h"

namespace pv {

void check_category_name(const std::string& name) {
  const bool control = std::any_of(name.begin(), name.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (name.empty() || name.size() > 100 || name.starts_with('.') ||
      name.find('/') != std::string::npos || control) {
    throw Error("category name '" + name +
                "': 1 to 100 characters without '/', control characters or a leading '.'");
  }
}

const char* upsampling_name(MapUpsampling mode) {
  return mode == MapUpsampling::kNearest ? "nearest" : "bilinear";
}

MapUpsampling parse_upsampling(std::string_view name, std::string_view setting) {
  for (const MapUpsampling mode : {MapUpsampling::kBilinear, MapUpsampling::kNearest}) {
    if (name == upsampling_name(mode)) return mode;
  }
  throw Error(std::string(setting) + " is '" + std::string(name) + "', not bilinear or nearest");
}

const char* threshold_method_name(ThresholdMethod method) {
  switch (method) {
    case ThresholdMethod::kFalseAlarmRate:
      return "false_alarm_rate";
    case ThresholdMethod::kF1:
      return "f1";
    case ThresholdMethod::kFixed:
      return "fixed";
  }
  return "?";
}

namespace patchcore {
namespace {

std::optional<ThresholdMethod> parse_threshold_method(const std::string& name) {
  for (const auto method :
       {ThresholdMethod::kFalseAlarmRate, ThresholdMethod::kF1, ThresholdMethod::kFixed}) {
    if (name == threshold_method_name(method)) return method;
  }
  return std::nullopt;
}

constexpr const char* kFormatName = "patchvec-model";

}  // namespace

void set_backbone(ModelInfo& info, BackboneState backbone) {
  info.backbone = std::move(backbone);
  info.options.embedder.backbone = info.backbone.backbone;
  info.options.embedder.weights = info.backbone.weights;
  info.options.embedder.seed = info.backbone.seed;
}

nlohmann::json to_json(const ModelInfo& info) {
  nlohmann::json j = {
      {"format", kFormatName},
      {"category", info.category},
      {"created", info.created},
      {"backbone",
       {{"name", info.backbone.backbone},
        {"weights", info.backbone.weights.string()},
        {"weights_sha256", info.backbone.weights_sha256},
        {"seed", info.backbone.seed},
        {"pretrained", info.pretrained}}},
      {"preprocess",
       {{"image_size", info.options.embedder.image_size},
        {"crop_size", info.options.embedder.crop_size}}},
      {"grid", {{"height", info.grid.height}, {"width", info.grid.width}, {"dim", info.grid.dim}}},
      {"coreset",
       {{"ratio", info.options.coreset_ratio},
        {"method", coreset_method_name(info.options.coreset)},
        {"projection_dim", info.options.projection_dim},
        {"seed", info.options.seed},
        {"covering_radius", info.covering_radius},
        {"train_images", info.train_images},
        {"train_patches", info.train_patches},
        {"bank_size", info.bank_size}}},
      {"scoring",
       {{"num_neighbors", info.options.num_neighbors},
        {"sigma", info.options.sigma},
        {"upsampling", upsampling_name(info.options.upsampling)}}},
      {"thresholds", nullptr}};
  if (info.thresholds) {
    const Thresholds& t = *info.thresholds;
    j["thresholds"] = {{"image", t.image},
                       {"pixel", t.pixel},
                       {"image_min", t.image_min},
                       {"image_max", t.image_max},
                       {"pixel_min", t.pixel_min},
                       {"pixel_max", t.pixel_max},
                       {"source", t.source},
                       {"method", threshold_method_name(t.method)},
                       {"false_alarm_rate", t.false_alarm_rate},
                       {"good_images", t.good_images}};
  }
  j["similarity"] = nullptr;
  if (info.similarity) {
    j["similarity"] = {{"min_similarity", info.similarity->min_similarity},
                       {"false_alarm_rate", info.similarity->false_alarm_rate},
                       {"good_images", info.similarity->good_images}};
  }
  j["revision"] = info.revision;
  // Files of float32 models written before precisions existed have no such field.
  j["precision"] = {{"name", precision_name(info.backbone.precision)}, {"agreement", nullptr}};
  if (info.backbone.precision == Precision::kInt8) {
    j["backbone"]["activation_min"] = info.backbone.activation_min;
    j["backbone"]["activation_max"] = info.backbone.activation_max;
    j["backbone"]["int8_stem_weight_bits"] = info.backbone.int8_stem_weight_bits;
  }
  if (info.agreement) {
    const PrecisionAgreement& a = *info.agreement;
    const auto number_or_null = [](double v) {
      return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
    };
    j["precision"]["agreement"] = {{"images", a.images},
                                   {"max_relative_difference", a.max_relative_difference},
                                   {"rank_correlation", a.rank_correlation},
                                   {"verdict_flips", a.verdict_flips},
                                   {"auroc", number_or_null(a.auroc)},
                                   {"auroc_fp32", number_or_null(a.auroc_fp32)}};
  }
  if (info.shortlist_check) {
    const ShortlistCheck& c = *info.shortlist_check;
    j["shortlist_check"] = {{"images", c.images},
                            {"patches", c.patches},
                            {"recall_at_1", c.recall_at_1},
                            {"max_relative_error", c.max_relative_error},
                            {"score_differences", c.score_differences}};
  }
  const TilingOptions& tiling = info.options.embedder.tiling;
  if (tiling.enabled()) {
    j["preprocess"]["tiling"] = {
        {"size", tiling.size}, {"overlap", tiling.overlap}, {"scale", tiling.scale}};
  }
  return j;
}

namespace {

// Reading a model's metadata strictly: every field present, of its type, within its range; the
// first problem is an Error naming the field ("coreset.bank_size").
class Fields {
 public:
  explicit Fields(const nlohmann::json& root) : root_(root) {}

  const nlohmann::json& at(const std::string& dotted) const {
    const nlohmann::json* node = &root_;
    std::size_t begin = 0;
    while (begin <= dotted.size()) {
      const std::size_t end = std::min(dotted.find('.', begin), dotted.size());
      const std::string key = dotted.substr(begin, end - begin);
      if (!node->is_object() || !node->contains(key)) fail(dotted, "is missing");
      node = &node->at(key);
      begin = end + 1;
    }
    return *node;
  }

  bool has(const std::string& dotted) const {
    try {
      at(dotted);
      return true;
    } catch (const Error&) {
      return false;
    }
  }

  std::string text(const std::string& name) const {
    const auto& v = at(name);
    if (!v.is_string()) fail(name, "must be text");
    return v.get<std::string>();
  }
  bool flag(const std::string& name) const {
    const auto& v = at(name);
    if (!v.is_boolean()) fail(name, "must be true or false");
    return v.get<bool>();
  }
  std::int64_t integer(const std::string& name, std::int64_t min, std::int64_t max) const {
    const auto value = json_integer<std::int64_t>(at(name), "field " + name);
    if (value < min || value > max) {
      fail(name, "is " + std::to_string(value) + ", outside " + std::to_string(min) + ".." +
                     std::to_string(max));
    }
    return value;
  }
  // A list of at most `max_count` finite numbers within +-limit.
  std::vector<float> numbers(const std::string& name, std::size_t max_count, double limit) const {
    const auto& v = at(name);
    if (!v.is_array() || v.size() > max_count) {
      fail(name, "must be a list of at most " + std::to_string(max_count) + " numbers");
    }
    std::vector<float> out;
    for (const auto& item : v) {
      if (!item.is_number() || !std::isfinite(item.get<double>()) ||
          std::abs(item.get<double>()) > limit) {
        fail(name, "holds " + item.dump() + ", not a number within +-" + shown(limit));
      }
      out.push_back(item.get<float>());
    }
    return out;
  }
  // A number, or null for "not measured" (NaN).
  double number_or_nan(const std::string& name, double min, double max) const {
    if (at(name).is_null()) return std::numeric_limits<double>::quiet_NaN();
    return number(name, min, max);
  }
  std::uint64_t unsigned_integer(const std::string& name) const {
    return json_integer<std::uint64_t>(at(name), "field " + name);
  }
  double number(const std::string& name, double min, double max) const {
    const auto& v = at(name);
    if (!v.is_number()) fail(name, "must be a number");
    const double value = v.get<double>();
    if (!std::isfinite(value) || value < min || value > max) {
      fail(name, "is " + v.dump() + ", outside " + shown(min) + ".." + shown(max));
    }
    return value;
  }

  static std::string shown(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    return text;
  }

  [[noreturn]] static void fail(const std::string& name, const std::string& problem) {
    throw Error("field " + name + " " + problem);
  }

 private:
  const nlohmann::json& root_;
};

constexpr int kMaxImageSize = 4096;  // pixels a side after resizing; beyond is no PatchCore model
constexpr int kMaxNeighbors = 1000;

}  // namespace

ModelInfo model_info_from(const nlohmann::json& j) {
  const Fields f(j);
  if (f.text("format") != kFormatName) Fields::fail("format", "is not " + std::string(kFormatName));
  ModelInfo info;
  info.category = f.text("category");
  check_category_name(info.category);
  info.created = f.text("created");
  info.backbone.backbone = f.text("backbone.name");
  info.backbone.weights = f.text("backbone.weights");
  // Training records the absolute path of a local file. Anything else (a URL, a name, a relative
  // path) would make loading a model fetch or read what its author chose, not the user.
  if (!info.backbone.weights.empty() && !info.backbone.weights.is_absolute()) {
    Fields::fail("backbone.weights",
                 "is '" + info.backbone.weights.string() + "', not empty or an absolute file path");
  }
  info.backbone.weights_sha256 = f.text("backbone.weights_sha256");
  if (info.backbone.weights_sha256.size() != 64 ||
      info.backbone.weights_sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
    Fields::fail("backbone.weights_sha256", "is not a SHA-256 in hex");
  }
  info.backbone.seed = f.unsigned_integer("backbone.seed");
  set_backbone(info, info.backbone);  // options.embedder mirrors it (no tensors yet: a cheap copy)
  info.pretrained = f.flag("backbone.pretrained");
  info.options.embedder.image_size =
      static_cast<int>(f.integer("preprocess.image_size", 1, kMaxImageSize));
  info.options.embedder.crop_size =
      static_cast<int>(f.integer("preprocess.crop_size", 0, info.options.embedder.image_size));
  // Files without tiling have no field for it.
  if (f.has("preprocess.tiling")) {
    TilingOptions& tiling = info.options.embedder.tiling;
    tiling.size = static_cast<int>(f.integer("preprocess.tiling.size", 32, kMaxImageSize));
    tiling.overlap = static_cast<int>(f.integer("preprocess.tiling.overlap", 0, tiling.size / 2));
    tiling.scale = f.number("preprocess.tiling.scale", 1e-6, 4);
    if (info.options.embedder.image_size != tiling.size || info.options.embedder.crop_size != 0) {
      Fields::fail("preprocess.tiling.size",
                   "is " + std::to_string(tiling.size) + ", but preprocess.image_size is " +
                       std::to_string(info.options.embedder.image_size) +
                       " and preprocess.crop_size " +
                       std::to_string(info.options.embedder.crop_size) + " (a tile and no crop)");
    }
  }
  info.grid = {f.integer("grid.height", 1, kMaxImageSize),
               f.integer("grid.width", 1, kMaxImageSize), f.integer("grid.dim", 1, 1 << 16)};
  info.options.coreset_ratio = f.number("coreset.ratio", 1e-9, 1.0);
  // Files before the fast method was chosen by exact selection.
  info.options.coreset = f.has("coreset.method") ? parse_coreset_method(f.text("coreset.method"),
                                                                        "field coreset.method")
                                                 : CoresetMethod::kExact;
  info.options.projection_dim = f.integer("coreset.projection_dim", 0, 1 << 16);
  info.options.seed = f.unsigned_integer("coreset.seed");
  info.covering_radius = f.number("coreset.covering_radius", 0, 1e30);
  info.train_images = f.integer("coreset.train_images", 1, std::int64_t{1} << 40);
  info.train_patches = f.integer("coreset.train_patches", 1, std::int64_t{1} << 50);
  info.bank_size = f.integer("coreset.bank_size", 1, info.train_patches);
  const int output = info.options.embedder.crop_size > 0 ? info.options.embedder.crop_size
                                                         : info.options.embedder.image_size;
  info.options.num_neighbors =
      static_cast<int>(f.integer("scoring.num_neighbors", 1, kMaxNeighbors));
  info.options.sigma = f.number("scoring.sigma", 1e-3, max_sigma(output));
  info.options.upsampling =
      parse_upsampling(f.text("scoring.upsampling"), "field scoring.upsampling");
  if (!f.at("thresholds").is_null()) {
    const auto value = [&](const char* name) {
      return static_cast<float>(f.number(std::string("thresholds.") + name, -3e38, 3e38));
    };
    info.thresholds = Thresholds{
        value("image"),     value("pixel"),     value("image_min"),         value("image_max"),
        value("pixel_min"), value("pixel_max"), f.text("thresholds.source")};
    // Models written before thresholds could come from good images: F1 on a test split.
    if (f.has("thresholds.method")) {
      const std::string method = f.text("thresholds.method");
      const auto known = parse_threshold_method(method);
      if (!known) Fields::fail("thresholds.method", "is '" + method + "'");
      info.thresholds->method = *known;
      info.thresholds->false_alarm_rate = f.number("thresholds.false_alarm_rate", 0, 1);
      info.thresholds->good_images = f.integer("thresholds.good_images", 0, std::int64_t{1} << 40);
    }
  }
  if (f.has("similarity") && !f.at("similarity").is_null()) {
    info.similarity =
        SimilarityRule{static_cast<float>(f.number("similarity.min_similarity", -1, 1)),
                       f.number("similarity.false_alarm_rate", 0, 1),
                       f.integer("similarity.good_images", 0, std::int64_t{1} << 40)};
  }
  info.revision = f.has("revision") ? f.integer("revision", 1, std::int64_t{1} << 40) : 1;
  if (f.has("precision")) {
    info.backbone.precision = *[&] {
      try {
        const auto p = parse_precision(f.text("precision.name"), "field precision.name");
        if (!p) Fields::fail("precision.name", "is 'auto', not a precision");
        return p;
      } catch (const Error& e) {
        if (std::string(e.what()).starts_with("field")) throw;
        throw Error(std::string("field precision.name: ") + e.what());
      }
    }();
    info.options.precision = info.backbone.precision;
    if (info.backbone.precision == Precision::kInt8) {
      constexpr std::size_t kMaxTensors = 1000;  // a ResNet to layer3 quantises ~60
      info.backbone.activation_min = f.numbers("backbone.activation_min", kMaxTensors, 1e12);
      info.backbone.activation_max = f.numbers("backbone.activation_max", kMaxTensors, 1e12);
      // Files written before the stem's weights had 7 bits have 8 and no such field.
      info.backbone.int8_stem_weight_bits =
          f.has("backbone.int8_stem_weight_bits")
              ? static_cast<int>(f.integer("backbone.int8_stem_weight_bits", 7, 8))
              : 8;
    }
    if (!f.at("precision.agreement").is_null()) {
      info.agreement = PrecisionAgreement{
          .images = f.integer("precision.agreement.images", 0, std::int64_t{1} << 40),
          .max_relative_difference =
              f.number("precision.agreement.max_relative_difference", 0, 1e30),
          .rank_correlation = f.number("precision.agreement.rank_correlation", -1, 1),
          .verdict_flips = f.integer("precision.agreement.verdict_flips", 0, std::int64_t{1} << 40),
          .auroc = f.number_or_nan("precision.agreement.auroc", 0, 1),
          .auroc_fp32 = f.number_or_nan("precision.agreement.auroc_fp32", 0, 1)};
    }
  }
  // Files written before the shortlist search have no such field.
  if (f.has("shortlist_check")) {
    constexpr std::int64_t kMany = std::int64_t{1} << 40;
    info.shortlist_check = ShortlistCheck{
        .images = f.integer("shortlist_check.images", 0, kMany),
        .patches = f.integer("shortlist_check.patches", 0, kMany),
        .recall_at_1 = f.number("shortlist_check.recall_at_1", 0, 1),
        .max_relative_error = f.number("shortlist_check.max_relative_error", 0, 1e30),
        .score_differences = f.integer("shortlist_check.score_differences", 0, kMany)};
  }
  return info;
}

void check_contents(const ModelInfo& info, const ModelFileContents& contents) {
  const bool carried = info.pretrained && info.backbone.weights.empty();
  if (carried != !contents.backbone.empty()) {
    throw Error(carried ? "field backbone.weights is empty for pretrained weights, and no section "
                          "backbone carries them"
                        : "section backbone is there, but field backbone.weights names a file");
  }
  const bool half = contents.bank.scalar_type() == at::kBFloat16;
  if (half != (info.backbone.precision != Precision::kFloat32)) {
    throw Error(std::string("section bank is ") + (half ? "BF16" : "F32") +
                ", but field "
                "precision.name is " +
                precision_name(info.backbone.precision) +
                (half ? " (float32 models keep it in F32)" : " (reduced ones keep it in BF16)"));
  }
  if (contents.bank.size(0) != info.bank_size || contents.bank.size(1) != info.grid.dim) {
    throw Error("section bank is " + std::to_string(contents.bank.size(0)) + " x " +
                std::to_string(contents.bank.size(1)) + ", the metadata says " +
                std::to_string(info.bank_size) + " x " + std::to_string(info.grid.dim));
  }
}

}  // namespace patchcore
}  // namespace pv
