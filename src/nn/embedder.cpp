#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/utils.h>

#include <patchvec/embedder.h>
#include <patchvec/error.h>
#include <patchvec/interrupt.h>
#include <patchvec/log.h>
#include <patchvec/stopwatch.h>
#include <patchvec/weights.h>

#include "nn/fused_resnet.h"
#include "nn/patch_features.h"
#include "nn/preprocess.h"
#include "nn/resnet.h"
#include "nn/tensor_file.h"
#include "nn/weights.h"
#include "util/progress.h"
#include "util/sha256.h"

namespace pv {
namespace {

// Reads images batch by batch: each batch is decoded and preprocessed by all compute threads,
// then handed to the network. (Decoding on a helper thread during the forward pass was slower:
// the convolutions already use every core and the two fight for them.) With tiling, a batch is
// one image's tiles: an image of many tiles is a batch of its own already.
class BatchReader {
 public:
  // With `unreadable`, images that cannot be read are skipped and their messages kept there.
  // `check` refuses an image from its header before it is decoded (Embedder::check_image).
  using Check = std::function<void(const ImageHeader&, std::string_view)>;
  BatchReader(std::span<const std::filesystem::path> paths, int batch_size,
              const nn::PreprocessOptions& preprocess, const ImageLimits& limits, Check check,
              std::vector<std::string>* unreadable = nullptr)
      : BatchReader(
            paths.size(), batch_size, preprocess,
            [paths, limits, check](std::size_t i, const nn::PreprocessOptions& p,
                                   TileLayout* layout) {
              // One read: the header is checked, then the same bytes decoded.
              const std::string name = paths[i].string();
              const std::vector<std::byte> bytes = read_image_file(paths[i], limits);
              check(read_image_header(bytes, name), name);
              return nn::preprocess_inputs(decode_image(bytes, name, limits), p, layout);
            },
            unreadable) {}

  // Images decoded already (the i-th is images[i]), checked as files are, against their size.
  BatchReader(std::span<const Image* const> images, int batch_size,
              const nn::PreprocessOptions& preprocess, Check check,
              std::vector<std::string>* unreadable = nullptr)
      : BatchReader(
            images.size(), batch_size, preprocess,
            [images, check](std::size_t i, const nn::PreprocessOptions& p, TileLayout* layout) {
              const Image& image = *images[i];
              check({.width = image.width, .height = image.height}, "image " + std::to_string(i));
              return nn::preprocess_inputs(image, p, layout);
            },
            unreadable) {}

  // The network input(s) of input i; throws ImageError when it cannot be read.
  using Load =
      std::function<at::Tensor(std::size_t i, const nn::PreprocessOptions&, TileLayout* layout)>;
  BatchReader(std::size_t count, int batch_size, const nn::PreprocessOptions& preprocess, Load load,
              std::vector<std::string>* unreadable)
      : count_(count),
        batch_size_(preprocess.tiling.enabled() ? 1 : static_cast<std::size_t>(batch_size)),
        preprocess_(preprocess),
        load_(std::move(load)),
        unreadable_(unreadable) {
    if (unreadable_ != nullptr) unreadable_->assign(count, {});
  }

  struct Batch {
    at::Tensor inputs;                 // N x 3 x S x S: the images, or their tiles
    std::vector<std::size_t> indices;  // of the images in `paths`
    std::vector<TileLayout> layouts;   // with tiling: one per image
    std::size_t consumed = 0;          // paths read for it, skipped ones included
  };

  // The next batch, or nullopt after the last one. Throws the ImageError of an image that cannot
  // be read (unless skipping them).
  std::optional<Batch> next() {
    Batch batch;
    while (batch.indices.empty()) {
      if (position_ >= count_) return std::nullopt;
      const std::size_t first = position_;
      const std::size_t size = std::min(batch_size_, count_ - first);
      position_ += size;
      batch.consumed += size;
      std::vector<at::Tensor> inputs(size);
      std::vector<TileLayout> layouts(size);
      std::vector<std::exception_ptr> errors(size);
      at::parallel_for(0, static_cast<std::int64_t>(size), 1,
                       [&](std::int64_t begin, std::int64_t end) {
                         for (auto i = begin; i < end; ++i) {
                           try {
                             inputs[i] = load_(first + i, preprocess_, &layouts[i]);
                           } catch (...) {
                             // exceptions must not escape an OpenMP region
                             errors[i] = std::current_exception();
                           }
                         }
                       });
      std::vector<at::Tensor> readable;
      for (std::size_t i = 0; i < size; ++i) {
        if (errors[i]) {
          try {
            std::rethrow_exception(errors[i]);
          } catch (const ImageError& e) {
            if (unreadable_ == nullptr) throw;
            (*unreadable_)[first + i] = e.what();
            continue;
          }
        }
        readable.push_back(std::move(inputs[i]));
        batch.indices.push_back(first + i);
        if (preprocess_.tiling.enabled()) batch.layouts.push_back(std::move(layouts[i]));
      }
      if (!readable.empty()) batch.inputs = at::cat(readable);
    }
    return batch;
  }

 private:
  std::size_t count_;
  std::size_t batch_size_;
  nn::PreprocessOptions preprocess_;
  Load load_;
  std::vector<std::string>* unreadable_;
  std::size_t position_ = 0;
};

// Parts of a torchvision checkpoint that PatchCore never runs.
const std::vector<std::string> kUnusedWeights = {"fc.", "layer4."};

// When a weights file does not fit the chosen backbone, it usually fits another one.
std::string backbone_hint(const EmbedderOptions& options, const nn::TensorFile& file) {
  for (const auto& name : nn::backbone_names()) {
    if (name == options.backbone) continue;
    const nn::ResNet candidate(nn::resnet_spec(name));
    if (nn::match_weights(*candidate, file, kUnusedWeights).problems.empty()) {
      return "\nThe file fits backbone " + name + ": pass --backbone " + name + ".";
    }
  }
  return "";
}

std::int64_t halve(std::int64_t size) {
  return (size - 1) / 2 + 1;
}  // stride-2 conv or pool

}  // namespace

struct Embedder::Impl {
  void build(const EmbedderOptions& opts);

  EmbedderOptions options;
  mutable std::string weights_sha256;  // of the weights file, computed when first needed
  nn::PreprocessOptions preprocess;
  nn::ResNet network{nullptr};
  // Absent until the weights are final. Shared with the views with_precision() makes: prepared
  // forms are added only before anything else can see it (set_precision()).
  std::shared_ptr<nn::FusedResNet> fused;
  Precision precision = Precision::kFloat32;        // what embed() runs
  nn::ActivationRanges ranges;                      // int8's, once measured or restored
  int int8_stem_weight_bits = kInt8StemWeightBits;  // a restored model's may be older
  bool pretrained = false;
  bool carried = false;  // restored from tensors a model file carries

  // Reads `reader`'s batches (`count` inputs in all), embeds them and hands them to `consume`.
  void embed_each(BatchReader& reader, std::size_t count, const EmbeddingConsumer& consume,
                  std::string_view progress_label, EmbedTimings* timings) const;

  // The network on `batch` (N x 3 x S x S), batch_size inputs at a time; N x grid floats to out.
  // `recomputed`: adds the images int8 handed to float32 (FusedResNet::forward).
  void embed_batch(const at::Tensor& batch, float* out, std::int64_t* recomputed = nullptr) const {
    const at::InferenceMode inference;
    const std::int64_t step = options.batch_size;
    for (std::int64_t start = 0; start < batch.size(0); start += step) {
      const nn::Features features = fused->forward(
          batch.narrow(0, start, std::min(step, batch.size(0) - start)), precision, recomputed);
      // N x C x H x W, channels-last in memory, so the NHWC copy below is a plain memcpy.
      const at::Tensor nhwc =
          nn::patch_embeddings(features.layer2, features.layer3).permute({0, 2, 3, 1}).contiguous();
      std::memcpy(out, nhwc.data_ptr<float>(), nhwc.numel() * sizeof(float));
      out += nhwc.numel();
    }
  }

  GridShape grid() const {
    const std::int64_t side = halve(halve(halve(preprocess.output_size())));
    const auto channels = nn::feature_channels(network->spec);
    return {side, side, channels[0] + channels[1]};
  }

  PatchEmbeddings allocate(std::size_t count) const {
    PatchEmbeddings result{.count = static_cast<std::int64_t>(count), .grid = grid()};
    result.values.resize(count * result.grid.height * result.grid.width * result.grid.dim);
    return result;
  }

  void require_ready() const {
    if (!fused) {
      throw Error("backbone " + options.backbone +
                  " has random weights that were never calibrated: call calibrate() on the "
                  "training images first");
    }
  }
};

namespace {

bool is_running_statistic(const std::string& name) {
  return name.ends_with("running_mean") || name.ends_with("running_var") ||
         name.ends_with("num_batches_tracked");
}

// Once per process: a demo or service builds one embedder per category.
void announce_random_backbone(const EmbedderOptions& options) {
  static std::once_flag once;
  std::call_once(once, [&] {
    log::warn("no pretrained weights: " + options.backbone +
              " is randomly initialised (BatchNorm re-estimated on the images), far less accurate "
              "than --weights imagenet");
  });
}

}  // namespace

void set_compute_threads(int threads) {
  const int n = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(n, 1));
}

void Embedder::Impl::build(const EmbedderOptions& opts) {
  options = opts;
  preprocess = {opts.image_size, opts.crop_size, opts.tiling};
  nn::validate(preprocess);
  if (opts.batch_size <= 0) throw Error("--batch-size must be positive");
  set_compute_threads(opts.threads);
  network = nn::ResNet(nn::resnet_spec(opts.backbone));
  network->eval();
  // A URL or a name becomes a file in the cache (downloaded if needed); "random" becomes none.
  options.weights = resolve_weights(opts.weights.string(), opts.backbone);
  if (!options.weights.empty()) {
    const nn::TensorFile file(options.weights);
    try {
      nn::load_weights(*network, file, kUnusedWeights);
    } catch (const Error& e) {
      throw Error(e.what() + backbone_hint(options, file));
    }
    pretrained = true;
    fused = std::make_shared<nn::FusedResNet>(*network);
  } else {
    network->reset_parameters(opts.seed);
  }
}

WeightsFit check_weights(const std::filesystem::path& file, const std::string& backbone) {
  const nn::TensorFile tensors(file);
  WeightsFit fit{.format = std::string(tensors.format()),
                 .tensors = tensors.tensors().size(),
                 .sha256 = sha256_file_hex(file)};
  const std::vector<std::string> candidates =
      backbone.empty() ? nn::backbone_names() : std::vector<std::string>{backbone};
  for (const auto& name : candidates) {
    const nn::ResNet network(nn::resnet_spec(name));
    nn::WeightsMatch match = nn::match_weights(*network, tensors, kUnusedWeights);
    if (match.problems.empty() || !backbone.empty()) {
      fit.backbone = name;
      fit.prefix = std::move(match.prefix);
      fit.problems = std::move(match.problems);
      return fit;
    }
  }
  std::string names;
  for (const auto& name : candidates) names += (names.empty() ? "" : ", ") + name;
  fit.problems.push_back("fits none of the backbones (" + names + ")");
  return fit;
}

Embedder::Embedder(const EmbedderOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->build(options);
  if (!impl_->pretrained) announce_random_backbone(options);
}

Embedder Embedder::restore(const BackboneState& state, const EmbedderOptions& options) {
  EmbedderOptions wanted = options;
  wanted.backbone = state.backbone;
  wanted.weights = state.weights;
  wanted.seed = state.seed;
  if (!state.weights.empty()) {
    // A file: the model's own record, or what the user resolved (ModelLoadOptions::weights).
    if (!std::filesystem::exists(state.weights)) {
      // Weights downloaded on another machine are in this one's cache under another path.
      if (const auto cached = find_cached_weights(state.weights_sha256)) {
        wanted.weights = *cached;
      } else {
        throw Error("weights file " + state.weights.string() +
                    " (the model was trained with it) does not exist, and no file in the weights "
                    "cache (" +
                    weights_cache_dir().string() + ") has its SHA-256 " + state.weights_sha256 +
                    ": pass --weights with a copy, or put one in the cache");
      }
    }
    const std::string actual = sha256_file_hex(wanted.weights);
    if (actual != state.weights_sha256) {
      throw Error("weights file " + wanted.weights.string() + " has SHA-256 " + actual +
                  ", but the model was trained with " + state.weights_sha256);
    }
  }
  if (!state.tensors.empty()) return restore_carried(state, wanted);
  Embedder embedder(std::make_unique<Impl>());
  embedder.impl_->build(wanted);
  if (state.weights.empty()) {
    auto& network = *embedder.impl_->network;
    if (nn::tensors_sha256(network, [](const std::string& n) {
          return !is_running_statistic(n);
        }) != state.weights_sha256) {
      throw Error("the seeded random backbone (" + state.backbone + ", seed " +
                  std::to_string(state.seed) +
                  ") does not reproduce on this libtorch; retrain the model here");
    }
    nn::decode_tensors(network, state.batchnorm, "model's BatchNorm statistics: ");
    for (const auto& buffer : network.named_buffers()) {
      const torch::Tensor& t = buffer.value();
      if (!t.is_floating_point()) continue;
      if (!at::isfinite(t).all().item<bool>() ||
          (buffer.key().ends_with("running_var") && (t < 0).any().item<bool>())) {
        throw Error("model's BatchNorm statistics: tensor " + buffer.key() +
                    " holds NaN, infinite or negative variance values");
      }
    }
    embedder.impl_->fused = std::make_shared<nn::FusedResNet>(network);
  }
  embedder.impl_->weights_sha256 = state.weights_sha256;
  embedder.restore_precision(state);
  return embedder;
}

// A backbone whose every tensor the model file carries.
Embedder Embedder::restore_carried(const BackboneState& state, EmbedderOptions wanted) {
  wanted.weights.clear();
  Embedder embedder(std::make_unique<Impl>());
  embedder.impl_->build(wanted);
  auto& network = *embedder.impl_->network;
  const auto every = [](const std::string&) { return true; };
  nn::decode_tensors(network, state.tensors, "model's backbone tensors: ", every);
  for (const auto& [name, tensor] : network.named_parameters(/*recurse=*/true).pairs()) {
    if (!at::isfinite(tensor).all().item<bool>()) {
      throw Error("model's backbone tensors: " + name + " holds NaN or infinite values");
    }
  }
  for (const auto& buffer : network.named_buffers()) {
    const torch::Tensor& t = buffer.value();
    if (!t.is_floating_point()) continue;
    if (!at::isfinite(t).all().item<bool>() ||
        (buffer.key().ends_with("running_var") && (t < 0).any().item<bool>())) {
      throw Error("model's backbone tensors: " + buffer.key() +
                  " holds NaN, infinite or negative variance values");
    }
  }
  if (nn::tensors_sha256(network, every) != state.weights_sha256) {
    throw Error("model's backbone tensors do not have the SHA-256 its header records");
  }
  embedder.impl_->pretrained = true;
  embedder.impl_->carried = true;
  embedder.impl_->weights_sha256 = state.weights_sha256;
  embedder.impl_->fused = std::make_shared<nn::FusedResNet>(network);
  embedder.restore_precision(state);
  return embedder;
}

BackboneState Embedder::state(bool carry_weights) const {
  impl_->require_ready();
  BackboneState state{.backbone = impl_->options.backbone,
                      .weights = impl_->options.weights,
                      .seed = impl_->options.seed,
                      .precision = impl_->precision};
  if (impl_->precision == Precision::kInt8) {
    state.activation_min = impl_->ranges.min;
    state.activation_max = impl_->ranges.max;
    state.int8_stem_weight_bits = impl_->int8_stem_weight_bits;
  }
  if (impl_->pretrained && (carry_weights || impl_->carried)) {
    const auto every = [](const std::string&) { return true; };
    state.weights.clear();
    state.weights_sha256 = nn::tensors_sha256(*impl_->network, every);
    state.tensors = nn::encode_tensors(*impl_->network, every);
  } else if (impl_->pretrained) {
    if (impl_->weights_sha256.empty())
      impl_->weights_sha256 = sha256_file_hex(impl_->options.weights);
    state.weights = std::filesystem::absolute(impl_->options.weights);
    state.weights_sha256 = impl_->weights_sha256;
  } else {
    state.weights_sha256 = nn::tensors_sha256(
        *impl_->network, [](const std::string& n) { return !is_running_statistic(n); });
    state.batchnorm = nn::encode_tensors(*impl_->network, is_running_statistic);
  }
  return state;
}

std::vector<std::string> supported_backbones() {
  return nn::backbone_names();
}

Embedder::Embedder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Embedder::~Embedder() = default;
Embedder::Embedder(Embedder&&) noexcept = default;
Embedder& Embedder::operator=(Embedder&&) noexcept = default;

bool Embedder::pretrained() const {
  return impl_->pretrained;
}
bool Embedder::ready() const {
  return impl_->fused != nullptr;
}
const EmbedderOptions& Embedder::options() const {
  return impl_->options;
}

GridShape Embedder::grid() const {
  return impl_->grid();
}

std::int64_t Embedder::image_bytes(int width, int height) const {
  const std::int64_t pixels = std::int64_t{width} * height;
  std::int64_t bytes = pixels * kImageBytesPerPixel;  // decoded, and copied channels-first
  const TilingOptions& tiling = impl_->preprocess.tiling;
  if (!tiling.enabled()) return bytes;
  TileLayout layout;
  try {
    layout = tile_layout(width, height, tiling);
  } catch (const Error&) {
    return bytes;  // smaller than a tile: refused when it is preprocessed
  }
  const GridShape g = grid();
  const auto tiles = static_cast<std::int64_t>(layout.count());
  const std::int64_t scaled = std::int64_t{layout.width} * layout.height;
  const std::int64_t tile_pixels = std::int64_t{tiling.size} * tiling.size;
  const std::int64_t patches = tiles * g.height * g.width;
  bytes += scaled * 12;                       // the scaled image, channels-first
  bytes += tiles * tile_pixels * 3 * 4 * 4;   // the tiles: cut, normalised (two steps), batched
  bytes += patches * g.dim * 4;               // every tile's patch embeddings
  bytes += patches * 4 * 2 + scaled * 4 * 2;  // distances; the stitched and blurred map
  return bytes;
}

void Embedder::check_image(const ImageHeader& header, std::string_view name) const {
  const ImageLimits& limits = impl_->options.image_limits;
  check_limits(header, limits, name);
  const std::int64_t bytes = image_bytes(header.width, header.height);
  if (bytes > limits.max_bytes()) {
    const auto mb = [](std::int64_t n) { return std::to_string((n + (1 << 20) - 1) >> 20); };
    throw ImageError(ImageError::Kind::kTooLarge,
                     "image " + std::string(name) + ": " + std::to_string(header.width) + "x" +
                         std::to_string(header.height) + " pixels would take ~" + mb(bytes) +
                         " MB with this model's tiles (" + describe(impl_->preprocess.tiling) +
                         "), more than the " + mb(limits.max_bytes()) + " MB of one image at " +
                         std::to_string(limits.max_pixels) +
                         " pixels (--max-pixels): raise it, or lower --tile-scale");
  }
}

void Embedder::calibrate(std::span<const std::filesystem::path> images) {
  if (images.empty()) throw Error("BatchNorm calibration needs at least one image");
  ProgressBar progress("calibrate BN", images.size());
  BatchReader reader(images, impl_->options.batch_size, impl_->preprocess,
                     impl_->options.image_limits,
                     [this](const ImageHeader& h, std::string_view n) { check_image(h, n); });
  impl_->network->reestimate_batchnorm([&]() -> std::optional<at::Tensor> {
    auto batch = reader.next();
    if (!batch) return std::nullopt;
    progress.advance(batch->consumed);
    check_interrupt();
    return std::move(batch->inputs);
  });
  impl_->fused = std::make_shared<nn::FusedResNet>(*impl_->network);
  impl_->precision = Precision::kFloat32;  // new weights: reduced forms are prepared again
  impl_->ranges = {};
}

void Embedder::set_precision(Precision precision,
                             std::span<const std::filesystem::path> calibration) {
  impl_->require_ready();
  if (precision == Precision::kInt8 && impl_->ranges.batches == 0) {
    if (calibration.empty()) {
      throw Error("int8 needs calibration images to measure its activation ranges on");
    }
    // Evenly spaced over the images given, so that a sorted folder's variety is seen.
    std::vector<std::filesystem::path> chosen;
    const std::size_t count = std::min(calibration.size(), kInt8CalibrationImages);
    for (std::size_t i = 0; i < count; ++i) {
      chosen.push_back(calibration[i * calibration.size() / count]);
    }
    ProgressBar progress("int8 ranges", chosen.size());
    BatchReader reader(chosen, impl_->options.batch_size, impl_->preprocess,
                       impl_->options.image_limits,
                       [this](const ImageHeader& h, std::string_view n) { check_image(h, n); });
    nn::ActivationRanges ranges;
    while (auto batch = reader.next()) {
      impl_->fused->measure(batch->inputs, ranges);
      progress.advance(batch->consumed);
      check_interrupt();
    }
    for (float& v : ranges.min) v *= kInt8Headroom;
    for (float& v : ranges.max) v *= kInt8Headroom;
    impl_->ranges = std::move(ranges);
    impl_->int8_stem_weight_bits = kInt8StemWeightBits;
  }
  impl_->fused->prepare(precision, &impl_->ranges, impl_->int8_stem_weight_bits);
  impl_->precision = precision;
}

Precision Embedder::precision() const {
  return impl_->precision;
}

Embedder Embedder::with_precision(Precision precision) const {
  impl_->require_ready();
  if (!impl_->fused->prepared(precision)) {
    throw Error(std::string("the backbone was never prepared for ") + precision_name(precision));
  }
  Embedder view(std::make_unique<Impl>(*impl_));
  view.impl_->precision = precision;
  return view;
}

void Embedder::restore_precision(const BackboneState& state) {
  if (state.precision == Precision::kInt8) {
    impl_->ranges = {.min = state.activation_min, .max = state.activation_max, .batches = 1};
    impl_->int8_stem_weight_bits = state.int8_stem_weight_bits;
  }
  try {
    impl_->fused->prepare(state.precision, &impl_->ranges, impl_->int8_stem_weight_bits);
  } catch (const Error& e) {
    throw Error(std::string("model's ") + precision_name(state.precision) +
                " backbone: " + e.what());
  }
  impl_->precision = state.precision;
}

void Embedder::embed_each(std::span<const std::filesystem::path> images,
                          const EmbeddingConsumer& consume, std::string_view progress_label,
                          EmbedTimings* timings, std::vector<std::string>* unreadable) const {
  impl_->require_ready();
  BatchReader reader(
      images, impl_->options.batch_size, impl_->preprocess, impl_->options.image_limits,
      [this](const ImageHeader& h, std::string_view n) { check_image(h, n); }, unreadable);
  impl_->embed_each(reader, images.size(), consume, progress_label, timings);
}

void Embedder::embed_each(std::span<const Image* const> images, const EmbeddingConsumer& consume,
                          std::string_view progress_label, EmbedTimings* timings,
                          std::vector<std::string>* unreadable) const {
  impl_->require_ready();
  BatchReader reader(
      images, impl_->options.batch_size, impl_->preprocess,
      [this](const ImageHeader& h, std::string_view n) { check_image(h, n); }, unreadable);
  impl_->embed_each(reader, images.size(), consume, progress_label, timings);
}

void Embedder::Impl::embed_each(BatchReader& reader, std::size_t count,
                                const EmbeddingConsumer& consume, std::string_view progress_label,
                                EmbedTimings* timings) const {
  ProgressBar progress(std::string(progress_label), count);
  Stopwatch clock;
  while (auto batch = reader.next()) {
    const double read = clock.lap();
    PatchEmbeddings embeddings = allocate(static_cast<std::size_t>(batch->inputs.size(0)));
    embeddings.layouts = std::move(batch->layouts);
    embed_batch(batch->inputs, embeddings.values.data(),
                timings != nullptr ? &timings->recomputed_in_float32 : nullptr);
    if (timings != nullptr) {
      timings->read_seconds += read;
      timings->backbone_seconds += clock.lap();
    }
    consume(embeddings, batch->indices);
    clock.lap();
    progress.advance(batch->consumed);
    check_interrupt();
  }
}

PatchEmbeddings Embedder::embed(std::span<const std::filesystem::path> images,
                                std::string_view progress_label) const {
  PatchEmbeddings result = impl_->allocate(0);
  embed_each(
      images,
      [&](const PatchEmbeddings& batch, std::span<const std::size_t>) {
        result.count += batch.count;
        result.values.insert(result.values.end(), batch.values.begin(), batch.values.end());
        result.layouts.insert(result.layouts.end(), batch.layouts.begin(), batch.layouts.end());
      },
      progress_label);
  return result;
}

PatchEmbeddings Embedder::embed(std::span<const Image> images) const {
  std::vector<const Image*> pointers;
  for (const Image& image : images) pointers.push_back(&image);
  return embed(pointers, nullptr);
}

PatchEmbeddings Embedder::embed(std::span<const Image* const> images,
                                std::vector<std::string>* failed) const {
  impl_->require_ready();
  if (failed != nullptr) failed->assign(images.size(), {});
  std::vector<at::Tensor> inputs;
  std::vector<TileLayout> layouts;
  for (std::size_t i = 0; i < images.size(); ++i) {
    TileLayout layout;
    try {
      inputs.push_back(nn::preprocess_inputs(*images[i], impl_->preprocess, &layout));
    } catch (const ImageError& e) {
      if (failed == nullptr) throw;
      (*failed)[i] = e.what();
      continue;
    }
    layouts.push_back(std::move(layout));
  }
  const at::Tensor all = inputs.empty() ? at::Tensor() : at::cat(inputs);
  PatchEmbeddings result =
      impl_->allocate(all.defined() ? static_cast<std::size_t>(all.size(0)) : 0);
  if (all.defined()) impl_->embed_batch(all, result.values.data());
  if (impl_->preprocess.tiling.enabled()) result.layouts = std::move(layouts);
  return result;
}

}  // namespace pv
