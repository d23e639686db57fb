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

}  // namespace

AnomalibImport import_anomalib(const std::filesystem::path& checkpoint,
                               const AnomalibImportOptions& options) {
  check_category_name(options.category);
  const std::string where = "anomalib checkpoint " + checkpoint.string() + ": ";
  const nn::TorchCheckpoint file(checkpoint);
  const Value& root = file.root();
  const auto state = file.state_dict();
  std::vector<std::string> notes;

  // Which anomalib wrote it.
  const auto bank_entry = state.find(kBankKey);
  if (bank_entry == state.end()) {
    throw Error(where + "no key " + kBankKey +
                ": not a PatchCore checkpoint of anomalib (or it was saved before fitting)");
  }
  const bool v2 = state.contains("post_processor._image_threshold");
  const bool v1 =
      !v2 && (state.contains("image_threshold.value") || root.find("transform") != nullptr);
  const std::string layout = v2 ? "anomalib 2.x" : "anomalib 1.x";
  if (!v1 && !v2) notes.push_back("no thresholds or transforms recognised: read as anomalib 1.x");

  // Hyper-parameters: the Lightning module's __init__ arguments.
  const Value* hparams = root.find("hyper_parameters");
  if (hparams == nullptr) notes.push_back("no hyper_parameters: anomalib's defaults assumed");
  std::string backbone = text_of(member(hparams, "backbone")).value_or("");
  if (const auto layers = strings_of(member(hparams, "layers"))) {
    if (*layers != std::vector<std::string>{"layer2", "layer3"}) {
      std::string names;
      for (const auto& l : *layers) names += (names.empty() ? "" : ", ") + l;
      throw Error(where + "the model uses layers " + names +
                  "; PatchVec's PatchCore uses layer2 and layer3 only");
    }
  }
  int num_neighbors = kDefaultNeighbors;
  if (const auto k = number_of(member(hparams, "num_neighbors"))) {
    if (*k < 1 || *k > 1000 || std::floor(*k) != *k) {
      throw Error(where + "hyper_parameters.num_neighbors is " + std::to_string(*k));
    }
    num_neighbors = static_cast<int>(*k);
  } else {
    notes.push_back("num_neighbors not recorded: anomalib's default 9");
  }
  double coreset_ratio = kDefaultCoresetRatio;
  if (const auto r = number_of(member(hparams, "coreset_sampling_ratio")); r && *r > 0 && *r <= 1) {
    coreset_ratio = *r;
  }

  // The backbone: named by the hyper-parameters, else the one the tensors fit.
  const auto supported = supported_backbones();
  if (!backbone.empty() &&
      std::find(supported.begin(), supported.end(), backbone) == supported.end()) {
    throw Error(where + "backbone '" + backbone +
                "' is not one PatchVec builds (wide_resnet50_2, resnet50, resnet18)");
  }
  const WeightsFit fit = check_weights(checkpoint, backbone);
  if (!fit.problems.empty()) {
    std::string message = where + "its backbone tensors do not fit " +
                          (backbone.empty() ? std::string("any backbone") : backbone) + ":";
    for (std::size_t i = 0; i < fit.problems.size() && i < 6; ++i) {
      message += "\n  " + fit.problems[i];
    }
    throw Error(message);
  }
  if (backbone.empty()) notes.push_back("backbone not recorded: its tensors fit " + fit.backbone);
  backbone = fit.backbone;

  // Pre-processing: the transforms the checkpoint holds, else the version's default.
  Transforms transforms;
  std::unordered_set<const Value*> seen;
  find_transforms(v2 ? member(hparams, "pre_processor") : root.find("transform"), 0, transforms,
                  seen);
  const auto square = [&](const std::pair<std::int64_t, std::int64_t>& size, const char* what) {
    if (size.first != size.second || size.first < 1 || size.first > 4096) {
      throw Error(where + what + " is " + std::to_string(size.first) + "x" +
                  std::to_string(size.second) + "; PatchVec resizes to squares of 1 to 4096");
    }
    return static_cast<int>(size.first);
  };
  int image_size = 256;
  int crop_size = v2 ? 0 : 224;
  if (transforms.resize) {
    image_size = square(*transforms.resize, "its Resize");
    crop_size = transforms.crop ? square(*transforms.crop, "its CenterCrop") : 0;
  } else if (options.image_size == 0 || options.crop_size < 0) {
    notes.push_back(v2 ? "no pre-processor recorded: anomalib 2.1+'s default assumed (resize to "
                         "256, no crop; anomalib 2.0 cropped to 224: --crop-size 224)"
                       : "no transform recorded: anomalib 1.x's default assumed (resize to 256, "
                         "centre crop 224)");
  }
  if (options.image_size > 0) image_size = options.image_size;
  if (options.crop_size >= 0) crop_size = options.crop_size;

  EmbedderOptions embedder_options{.backbone = backbone,
                                   .weights = checkpoint,
                                   .image_size = image_size,
                                   .crop_size = crop_size,
                                   .threads = options.threads};
  Embedder embedder(embedder_options);
  const GridShape grid = embedder.grid();

  // The memory bank.
  at::Tensor bank;
  try {
    bank = float_tensor(bank_entry->second);
  } catch (const Error& e) {
    throw Error(where + "key " + kBankKey + " " + e.what());
  }
  if (bank.dim() != 2 || bank.size(0) < 1 || bank.size(1) != grid.dim) {
    throw Error(where + "key " + std::string(kBankKey) + " has shape " +
                nn::shape_string(bank.sizes().vec()) + "; " + backbone +
                "'s layer2 + layer3 patches need [M, " + std::to_string(grid.dim) + "]");
  }
  if (bank_entry->second.dtype != nn::DType::kF32) {
    notes.push_back("the memory bank is stored in lower precision: scores are computed in float32");
  }

  ModelInfo info;
  info.category = options.category;
  info.created = utc_now();
  info.bank_size = bank.size(0);
  info.options.coreset_ratio = coreset_ratio;
  info.options.projection_dim = 0;
  info.covering_radius = 0;  // unknown: anomalib does not record it
  info.options.seed = 0;
  // Not recorded either: what the ratio implies.
  const std::int64_t per_image = grid.height * grid.width;
  info.train_patches =
      std::max<std::int64_t>(info.bank_size, std::llround(info.bank_size / coreset_ratio));
  info.train_images = std::max<std::int64_t>(1, (info.train_patches + per_image - 1) / per_image);
  info.options.num_neighbors = num_neighbors;
  info.options.sigma = 4.0;
  info.options.upsampling = MapUpsampling::kNearest;
  const std::span<const float> values(bank.data_ptr<float>(),
                                      static_cast<std::size_t>(bank.numel()));
  Model model = Model::from_bank(std::move(embedder), values, info);

  // Thresholds and normalisation statistics.
  const auto key = [&](const char* name1, const char* name2) {
    return scalar(state, v2 ? name2 : name1, where);
  };
  const auto image = key("image_threshold.value", "post_processor._image_threshold");
  if (image && std::isfinite(*image)) {
    Thresholds t;
    t.image = *image;
    const auto pixel = key("pixel_threshold.value", "post_processor._pixel_threshold");
    t.pixel = pixel && std::isfinite(*pixel) ? *pixel : *image;
    if (!(pixel && std::isfinite(*pixel))) {
      notes.push_back("no pixel threshold: the image threshold is used for pixels");
    }
    const auto image_min = key("normalization_metrics.pred_scores.min", "post_processor.image_min");
    const auto image_max = key("normalization_metrics.pred_scores.max", "post_processor.image_max");
    const auto pixel_min =
        key("normalization_metrics.anomaly_maps.min", "post_processor.pixel_min");
    const auto pixel_max =
        key("normalization_metrics.anomaly_maps.max", "post_processor.pixel_max");
    const auto usable = [](const std::optional<float>& low, const std::optional<float>& high) {
      return low && high && std::isfinite(*low) && std::isfinite(*high) && *high > *low;
    };
    if (usable(image_min, image_max)) {
      t.image_min = *image_min;
      t.image_max = *image_max;
    } else {
      t.image_min = 0;
      t.image_max = std::max(2 * std::abs(t.image), 1e-6f);
      notes.push_back("no image min-max statistics: normalised scores use 0.." +
                      shown(t.image_max));
    }
    if (usable(pixel_min, pixel_max)) {
      t.pixel_min = *pixel_min;
      t.pixel_max = *pixel_max;
    } else {
      t.pixel_min = 0;
      t.pixel_max = std::max(2 * std::abs(t.pixel), 1e-6f);
      notes.push_back("no pixel min-max statistics: normalised maps use 0.." + shown(t.pixel_max));
    }
    t.method = ThresholdMethod::kF1;
    t.source =
        "adaptive F1 threshold of " + layout + " checkpoint " + checkpoint.filename().string();
    model.set_thresholds(t);
  } else {
    notes.push_back("no image threshold in the checkpoint: images are scored, not classified");
  }
  return {.model = std::move(model),
          .layout = layout,
          .weights_prefix = fit.prefix,
          .notes = std::move(notes)};
}

}  // namespace pv
