// anomalib PatchCore checkpoints as PatchVec models (see include/patchvec/anomalib.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <unordered_set>

#include <ATen/ATen.h>

#include <patchvec/anomalib.h>
#include <patchvec/error.h>

#include "nn/torch_checkpoint.h"
#include "nn/weights.h"
#include "util/clock.h"

namespace pv {
namespace {

using nn::pickle::Kind;
using nn::pickle::Value;

constexpr const char* kBankKey = "model.memory_bank";
constexpr int kDefaultNeighbors = 9;
constexpr double kDefaultCoresetRatio = 0.1;
constexpr int kMaxSearchDepth = 8;

// An object's member: from its __dict__, or from nn.Module's _modules inside it.
const Value* member(const Value* object, std::string_view name) {
  if (object == nullptr) return nullptr;
  if (object->is(Kind::kDict)) return object->find(name);
  if (!object->is(Kind::kObject)) return nullptr;
  if (const Value* direct = object->find(name)) return direct;  // a dict subclass
  if (const Value* value = object->attribute(name)) return value;
  // One level only: a hostile pickle's _modules may be the object itself.
  if (const Value* modules = object->attribute("_modules")) return modules->find(name);
  return nullptr;
}

std::optional<std::string> text_of(const Value* value) {
  if (value != nullptr && value->is(Kind::kString)) return value->text;
  return std::nullopt;
}

std::optional<double> number_of(const Value* value) {
  if (value == nullptr) return std::nullopt;
  if (value->is(Kind::kInt)) return static_cast<double>(value->integer);
  if (value->is(Kind::kFloat)) return value->real;
  return std::nullopt;
}

std::optional<std::vector<std::string>> strings_of(const Value* value) {
  if (value == nullptr || !(value->is(Kind::kList) || value->is(Kind::kTuple))) return std::nullopt;
  std::vector<std::string> out;
  for (const Value* item : value->items) {
    const auto text = text_of(item);
    if (!text) return std::nullopt;
    out.push_back(*text);
  }
  return out;
}

// A transform's `size`: an int, or a list/tuple of one or two ints (height, width).
std::optional<std::pair<std::int64_t, std::int64_t>> size_of(const Value* value) {
  if (value == nullptr) return std::nullopt;
  if (value->is(Kind::kInt)) return std::pair{value->integer, value->integer};
  if (!(value->is(Kind::kList) || value->is(Kind::kTuple))) return std::nullopt;
  std::vector<std::int64_t> sides;
  for (const Value* item : value->items) {
    if (!item->is(Kind::kInt)) return std::nullopt;
    sides.push_back(item->integer);
  }
  if (sides.size() == 1) return std::pair{sides[0], sides[0]};
  if (sides.size() == 2) return std::pair{sides[0], sides[1]};
  return std::nullopt;
}

struct Transforms {
  std::optional<std::pair<std::int64_t, std::int64_t>> resize;
  std::optional<std::pair<std::int64_t, std::int64_t>> crop;
  bool found_any = false;
};

// The first Resize and CenterCrop objects under `value` (torchvision's v1 or v2 classes), in the
// order the pickle lists them. Each node is visited once: a hostile pickle can share one value
// many times over (its memo) or make a list contain itself.
void find_transforms(const Value* value, int depth, Transforms& out,
                     std::unordered_set<const Value*>& seen) {
  if (value == nullptr || depth > kMaxSearchDepth || !seen.insert(value).second) return;
  if (value->is(Kind::kObject)) {
    const std::string& type = value->text;
    const bool resize = type.ends_with(".Resize");
    const bool crop = type.ends_with(".CenterCrop");
    if (resize || crop) {
      out.found_any = true;
      auto& slot = resize ? out.resize : out.crop;
      if (!slot) slot = size_of(member(value, "size"));
      return;
    }
    if (value->state != nullptr) find_transforms(value->state, depth + 1, out, seen);
    for (const auto& [key, item] : value->entries) find_transforms(item, depth + 1, out, seen);
    for (const Value* item : value->items) find_transforms(item, depth + 1, out, seen);
    return;
  }
  for (const Value* item : value->items) find_transforms(item, depth + 1, out, seen);
  for (const auto& [key, item] : value->entries) find_transforms(item, depth + 1, out, seen);
}

// A tensor of the state_dict as float32 (F16, BF16 and F64 converted).
at::Tensor float_tensor(const nn::TensorEntry& entry) {
  auto copy = nn::float_copy(entry);
  if (!copy) throw Error("is not a floating-point tensor");
  return *copy;
}

// A scalar tensor of the state_dict; nullopt when absent.
std::optional<float> scalar(const std::map<std::string, nn::TensorEntry>& state,
                            const std::string& key, const std::string& where) {
  const auto found = state.find(key);
  if (found == state.end()) return std::nullopt;
  at::Tensor t;
  try {
    t = float_tensor(found->second);
  } catch (const Error& e) {
    throw Error(where + "key " + key + " " + e.what());
  }
  if (t.numel() != 1) {
    throw Error(where + "key " + key + " holds " + std::to_string(t.numel()) +
                " values, not one number");
  }
  return t.item<float>();
}

std::string shown(float value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

// What the phases of an import share: the checkpoint as read, how messages name it, and every
// assumption made, in words.
struct Reading {
  const std::filesystem::path& checkpoint;
  const Value& root;
  std::map<std::string, nn::TensorEntry> state;
  std::string where;  // "anomalib checkpoint <file>: "
  std::vector<std::string> notes;
  bool v2 = false;     // anomalib 2.x's keys
  std::string layout;  // "anomalib 1.x" or "anomalib 2.x"
};

// Which anomalib wrote it. Throws for a checkpoint without a memory bank.
void read_layout(Reading& r) {
  if (!r.state.contains(kBankKey)) {
    throw Error(r.where + "no key " + kBankKey +
                ": not a PatchCore checkpoint of anomalib (or it was saved before fitting)");
  }
  r.v2 = r.state.contains("post_processor._image_threshold");
  const bool v1 =
      !r.v2 && (r.state.contains("image_threshold.value") || r.root.find("transform") != nullptr);
  r.layout = r.v2 ? "anomalib 2.x" : "anomalib 1.x";
  if (!v1 && !r.v2)
    r.notes.push_back("no thresholds or transforms recognised: read as anomalib 1.x");
}

struct HyperParameters {
  const Value* object = nullptr;  // the Lightning module's __init__ arguments; may be null
  std::string backbone;           // empty: not recorded
  int num_neighbors = kDefaultNeighbors;
  double coreset_ratio = kDefaultCoresetRatio;
};

HyperParameters read_hyper_parameters(Reading& r) {
  HyperParameters h{.object = r.root.find("hyper_parameters")};
  if (h.object == nullptr) r.notes.push_back("no hyper_parameters: anomalib's defaults assumed");
  h.backbone = text_of(member(h.object, "backbone")).value_or("");
  if (const auto layers = strings_of(member(h.object, "layers"))) {
    if (*layers != std::vector<std::string>{"layer2", "layer3"}) {
      std::string names;
      for (const auto& l : *layers) names += (names.empty() ? "" : ", ") + l;
      throw Error(r.where + "the model uses layers " + names +
                  "; PatchVec's PatchCore uses layer2 and layer3 only");
    }
  }
  if (const auto k = number_of(member(h.object, "num_neighbors"))) {
    if (*k < 1 || *k > 1000 || std::floor(*k) != *k) {
      throw Error(r.where + "hyper_parameters.num_neighbors is " + std::to_string(*k));
    }
    h.num_neighbors = static_cast<int>(*k);
  } else {
    r.notes.push_back("num_neighbors not recorded: anomalib's default 9");
  }
  if (const auto ratio = number_of(member(h.object, "coreset_sampling_ratio"));
      ratio && *ratio > 0 && *ratio <= 1) {
    h.coreset_ratio = *ratio;
  }
  return h;
}

// The backbone: named by the hyper-parameters, else the one the tensors fit; its tensors must
// fit it either way.
WeightsFit read_backbone(Reading& r, const std::string& named) {
  const auto supported = supported_backbones();
  if (!named.empty() && std::find(supported.begin(), supported.end(), named) == supported.end()) {
    throw Error(r.where + "backbone '" + named +
                "' is not one PatchVec builds (wide_resnet50_2, resnet50, resnet18)");
  }
  WeightsFit fit = check_weights(r.checkpoint, named);
  if (!fit.problems.empty()) {
    std::string message = r.where + "its backbone tensors do not fit " +
                          (named.empty() ? std::string("any backbone") : named) + ":";
    for (std::size_t i = 0; i < fit.problems.size() && i < 6; ++i) {
      message += "\n  " + fit.problems[i];
    }
    throw Error(message);
  }
  if (named.empty()) r.notes.push_back("backbone not recorded: its tensors fit " + fit.backbone);
  return fit;
}

// Pre-processing: the transforms the checkpoint holds, else the version's default; the options
// override either. Returns the resize and the crop (0: none).
std::pair<int, int> read_preprocessing(Reading& r, const HyperParameters& h,
                                       const AnomalibImportOptions& options) {
  Transforms transforms;
  std::unordered_set<const Value*> seen;
  find_transforms(r.v2 ? member(h.object, "pre_processor") : r.root.find("transform"), 0,
                  transforms, seen);
  const auto square = [&](const std::pair<std::int64_t, std::int64_t>& size, const char* what) {
    if (size.first != size.second || size.first < 1 || size.first > 4096) {
      throw Error(r.where + what + " is " + std::to_string(size.first) + "x" +
                  std::to_string(size.second) + "; PatchVec resizes to squares of 1 to 4096");
    }
    return static_cast<int>(size.first);
  };
  int image_size = 256;
  int crop_size = r.v2 ? 0 : 224;
  if (transforms.resize) {
    image_size = square(*transforms.resize, "its Resize");
    crop_size = transforms.crop ? square(*transforms.crop, "its CenterCrop") : 0;
  } else if (options.image_size == 0 || options.crop_size < 0) {
    r.notes.push_back(r.v2
                          ? "no pre-processor recorded: anomalib 2.1+'s default assumed (resize to "
                            "256, no crop; anomalib 2.0 cropped to 224: --crop-size 224)"
                          : "no transform recorded: anomalib 1.x's default assumed (resize to 256, "
                            "centre crop 224)");
  }
  if (options.image_size > 0) image_size = options.image_size;
  if (options.crop_size >= 0) crop_size = options.crop_size;
  return {image_size, crop_size};
}

// The memory bank as float32, of the backbone's patch dimension.
at::Tensor read_memory_bank(Reading& r, const GridShape& grid, const std::string& backbone) {
  const nn::TensorEntry& entry = r.state.at(kBankKey);
  at::Tensor bank;
  try {
    bank = float_tensor(entry);
  } catch (const Error& e) {
    throw Error(r.where + "key " + kBankKey + " " + e.what());
  }
  if (bank.dim() != 2 || bank.size(0) < 1 || bank.size(1) != grid.dim) {
    throw Error(r.where + "key " + std::string(kBankKey) + " has shape " +
                nn::shape_string(bank.sizes().vec()) + "; " + backbone +
                "'s layer2 + layer3 patches need [M, " + std::to_string(grid.dim) + "]");
  }
  if (entry.dtype != nn::DType::kF32) {
    r.notes.push_back(
        "the memory bank is stored in lower precision: scores are computed in float32");
  }
  return bank;
}

// What a PatchVec model records that anomalib does not: the training set's size implied by the
// ratio, anomalib's scoring (nearest upsampling, sigma 4).
ModelInfo model_info(const AnomalibImportOptions& options, const HyperParameters& h,
                     const GridShape& grid, std::int64_t bank_size) {
  ModelInfo info;
  info.category = options.category;
  info.created = utc_now();
  info.bank_size = bank_size;
  info.options.coreset_ratio = h.coreset_ratio;
  info.options.projection_dim = 0;
  info.covering_radius = 0;  // unknown: anomalib does not record it
  info.options.seed = 0;
  const std::int64_t per_image = grid.height * grid.width;
  info.train_patches =
      std::max<std::int64_t>(info.bank_size, std::llround(info.bank_size / h.coreset_ratio));
  info.train_images = std::max<std::int64_t>(1, (info.train_patches + per_image - 1) / per_image);
  info.options.num_neighbors = h.num_neighbors;
  info.options.sigma = 4.0;
  info.options.upsampling = MapUpsampling::kNearest;
  return info;
}

// Thresholds and normalisation statistics; nullopt without an image threshold.
std::optional<Thresholds> read_thresholds(Reading& r) {
  const auto key = [&](const char* name1, const char* name2) {
    return scalar(r.state, r.v2 ? name2 : name1, r.where);
  };
  const auto image = key("image_threshold.value", "post_processor._image_threshold");
  if (!image || !std::isfinite(*image)) {
    r.notes.push_back("no image threshold in the checkpoint: images are scored, not classified");
    return std::nullopt;
  }
  Thresholds t;
  t.image = *image;
  const auto pixel = key("pixel_threshold.value", "post_processor._pixel_threshold");
  t.pixel = pixel && std::isfinite(*pixel) ? *pixel : *image;
  if (!(pixel && std::isfinite(*pixel))) {
    r.notes.push_back("no pixel threshold: the image threshold is used for pixels");
  }
  const auto image_min = key("normalization_metrics.pred_scores.min", "post_processor.image_min");
  const auto image_max = key("normalization_metrics.pred_scores.max", "post_processor.image_max");
  const auto pixel_min = key("normalization_metrics.anomaly_maps.min", "post_processor.pixel_min");
  const auto pixel_max = key("normalization_metrics.anomaly_maps.max", "post_processor.pixel_max");
  const auto usable = [](const std::optional<float>& low, const std::optional<float>& high) {
    return low && high && std::isfinite(*low) && std::isfinite(*high) && *high > *low;
  };
  if (usable(image_min, image_max)) {
    t.image_min = *image_min;
    t.image_max = *image_max;
  } else {
    t.image_min = 0;
    t.image_max = std::max(2 * std::abs(t.image), 1e-6f);
    r.notes.push_back("no image min-max statistics: normalised scores use 0.." +
                      shown(t.image_max));
  }
  if (usable(pixel_min, pixel_max)) {
    t.pixel_min = *pixel_min;
    t.pixel_max = *pixel_max;
  } else {
    t.pixel_min = 0;
    t.pixel_max = std::max(2 * std::abs(t.pixel), 1e-6f);
    r.notes.push_back("no pixel min-max statistics: normalised maps use 0.." + shown(t.pixel_max));
  }
  t.method = ThresholdMethod::kF1;
  t.source =
      "adaptive F1 threshold of " + r.layout + " checkpoint " + r.checkpoint.filename().string();
  return t;
}

}  // namespace

AnomalibImport import_anomalib(const std::filesystem::path& checkpoint,
                               const AnomalibImportOptions& options) {
  check_category_name(options.category);
  const nn::TorchCheckpoint file(checkpoint);
  Reading r{.checkpoint = checkpoint,
            .root = file.root(),
            .state = file.state_dict(),
            .where = "anomalib checkpoint " + checkpoint.string() + ": "};
  read_layout(r);
  const HyperParameters h = read_hyper_parameters(r);
  const WeightsFit fit = read_backbone(r, h.backbone);
  const auto [image_size, crop_size] = read_preprocessing(r, h, options);
  Embedder embedder({.backbone = fit.backbone,
                     .weights = checkpoint,
                     .image_size = image_size,
                     .crop_size = crop_size,
                     .threads = options.threads});
  const GridShape grid = embedder.grid();
  const at::Tensor bank = read_memory_bank(r, grid, fit.backbone);
  const std::span<const float> values(bank.data_ptr<float>(),
                                      static_cast<std::size_t>(bank.numel()));
  Model model =
      Model::from_bank(std::move(embedder), values, model_info(options, h, grid, bank.size(0)));
  if (const auto thresholds = read_thresholds(r)) model.set_thresholds(*thresholds);
  return {.model = std::move(model),
          .layout = r.layout,
          .weights_prefix = fit.prefix,
          .notes = std::move(r.notes)};
}

}  // namespace pv
