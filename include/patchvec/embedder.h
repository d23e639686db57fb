// The embedding engine: images -> PatchCore patch embeddings, as torchvision + anomalib compute
// them (resize 256 antialiased, centre-crop 224, ImageNet normalisation, a ResNet's layer2 and
// layer3, 3x3 average pooling, layer3 resized to layer2's grid, concatenated).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <patchvec/image.h>
#include <patchvec/precision.h>
#include <patchvec/tiling.h>

namespace pv {

struct EmbedderOptions {
  // "wide_resnet50_2" (1536-d patches), "resnet50" (1536-d) or "resnet18" (384-d).
  std::string backbone = "wide_resnet50_2";
  // torchvision-layout weights (.safetensors, F32/F16/BF16). Empty: seeded random initialisation,
  // which needs calibrate() on the training images before embed().
  std::filesystem::path weights;
  std::uint64_t seed = 0;  // random initialisation only
  int image_size = 256;    // images are resized to image_size x image_size...
  int crop_size = 224;     // ...then centre-cropped to crop_size x crop_size; 0 = no crop
  // When enabled, replaces the two above: each image is scaled and cut into tiles, and every tile
  // is a network input whole (PatchEmbeddings::layouts says which tiles belong to which image).
  TilingOptions tiling;
  int batch_size = 8;        // images (tiles, with tiling) per forward pass
  int threads = 0;           // libtorch intra-op threads; 0 = one per core (process-wide setting)
  ImageLimits image_limits;  // images read from files (larger ones are an ImageError)
};

// The backbone names EmbedderOptions::backbone accepts.
std::vector<std::string> supported_backbones();

// How a weights file fits a backbone (patchvec weights verify and list).
struct WeightsFit {
  std::string format;       // "safetensors", "PyTorch zip" or "PyTorch legacy"
  std::size_t tensors = 0;  // in the file
  std::string sha256;       // of the file, lowercase hex (as the weights cache names files)
  std::string backbone;     // the backbone checked; with none asked for, the first that fits
  std::string prefix;       // the key prefix its tensors were found under ("" = none)
  std::vector<std::string> problems;  // why it does not fit; empty when it does
};

// Reads `file` and matches its tensors against `backbone`, or, when `backbone` is empty, against
// every supported backbone until one fits. Throws pv::Error when the file cannot be read as
// weights at all. Builds the backbone to compare shapes: about a second for wide_resnet50_2.
WeightsFit check_weights(const std::filesystem::path& file, const std::string& backbone = "");

// Shape of one image's patch grid.
struct GridShape {
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::int64_t dim = 0;  // channels of a patch embedding
};

// Patch embeddings of `count` network inputs: count x height x width x dim floats, row-major.
// Without tiling an input is an image; with it, a tile, and `layouts` holds one layout per image
// in order, each image's tiles following the previous image's (layouts[i].count() of them).
struct PatchEmbeddings {
  std::int64_t count = 0;
  GridShape grid;
  std::vector<float> values;
  std::vector<TileLayout> layouts;  // empty without tiling
};

// Everything needed to rebuild exactly this backbone later (model files store it).
struct BackboneState {
  std::string backbone;
  std::filesystem::path weights;  // the weights file; empty for the seeded random initialisation
  std::string weights_sha256;     // of that file, or of the generated parameters
  std::uint64_t seed = 0;
  std::vector<std::byte>
      batchnorm;  // re-estimated BatchNorm tensors (safetensors); random init only
  // Every tensor of the backbone (safetensors) when the model file carries its weights (models
  // imported from anomalib): then `weights` is empty and `weights_sha256` fingerprints these
  // tensors (nn::tensors_sha256).
  std::vector<std::byte> tensors;
  Precision precision = Precision::kFloat32;  // the form the backbone computes in
  // int8 only: the value range of each tensor it quantises (measured by set_precision()), and
  // the bits of its stem's weights (kInt8StemWeightBits since it exists; 8 before).
  std::vector<float> activation_min;
  std::vector<float> activation_max;
  int int8_stem_weight_bits = kInt8StemWeightBits;
};

// How many training images int8's activation ranges are measured on (evenly spaced over them):
// the ranges stop moving well before (on the demo's categories, within 2 % after 16 images).
inline constexpr std::size_t kInt8CalibrationImages = 32;
// ...and widened by this factor, so that new good images rarely leave them: an image that does
// (a defect, most likely) is computed again in float32 (nn::FusedResNet), since clipped its score
// would shrink (a blob defect scored 4x too low). Measured on the demo's tile: widened 1.25x, 5
// of its 37 test images left the ranges (none as measured: 16; 2x: 0, but coarser steps).
inline constexpr float kInt8Headroom = 1.25f;

// Where embedding time goes, accumulated over calls.
struct EmbedTimings {
  double read_seconds = 0;      // reading, decoding and preprocessing images
  double backbone_seconds = 0;  // the network and the patch features
  // int8: inputs (images, or tiles) whose activations left the calibrated ranges and were
  // computed again in float32, so that clipping never lowers a defect's score.
  std::int64_t recomputed_in_float32 = 0;
};

// Receives embeddings batch by batch: `batch` holds the images at positions `indices` of the input,
// in order (with tiling, all the tiles of each of them).
using EmbeddingConsumer =
    std::function<void(const PatchEmbeddings& batch, std::span<const std::size_t> indices)>;

// Thread-safety: embed() is const and may run concurrently on one Embedder; construction and
// calibrate() must not overlap with anything else.
class Embedder {
 public:
  // Builds the backbone and loads the weights. Throws pv::Error for an unknown backbone, bad
  // sizes, or a weights file that is unreadable, corrupt or does not fit the backbone. Without
  // weights it warns loudly on stderr that the backbone is random.
  explicit Embedder(const EmbedderOptions& options);

  // Rebuilds the backbone `state` describes, with the sizes and threads of `options` (its
  // backbone, weights and seed are ignored). Throws pv::Error if the weights file is missing or
  // its SHA-256 differs, if the seeded initialisation no longer reproduces the same weights, or
  // if carried tensors are incomplete, misshaped or not finite, or int8's activation ranges do
  // not fit the backbone. It computes in the state's precision.
  static Embedder restore(const BackboneState& state, const EmbedderOptions& options);
  ~Embedder();
  Embedder(Embedder&&) noexcept;
  Embedder& operator=(Embedder&&) noexcept;

  // Prepares `precision`'s form of the backbone and makes it the one every embedding call runs.
  // int8 first measures its activation ranges with the float32 form on up to
  // kInt8CalibrationImages of `calibration` (once: later calls reuse them). Does not check that
  // the CPU runs it natively (see require_precision()). Requires ready(); not concurrent with
  // anything, and only before with_precision() made views.
  void set_precision(Precision precision, std::span<const std::filesystem::path> calibration = {});
  Precision precision() const;  // fp32 unless set_precision() or restore() said otherwise
  // The same backbone (shared, no copy) computing in `precision`, which must be fp32 or a form
  // already prepared. Throws pv::Error otherwise.
  Embedder with_precision(Precision precision) const;

  // True when weights came from a file; false for the seeded random initialisation.
  bool pretrained() const;
  // False until calibrate() ran on a randomly initialised backbone; always true with weights.
  bool ready() const;

  // Re-estimates every BatchNorm's running mean and variance from these images (a forward pass
  // in training mode with a cumulative average, as torch.optim.swa_utils.update_bn does). This is
  // what makes a random backbone useful; with pretrained weights it is not needed.
  void calibrate(std::span<const std::filesystem::path> images);

  // Embeddings of all images at once (count x grid floats: ~4.8 MB per 224-pixel input for
  // 1536-d).
  PatchEmbeddings embed(std::span<const std::filesystem::path> images,
                        std::string_view progress_label = "embed") const;
  PatchEmbeddings embed(std::span<const Image> images) const;
  // Images held elsewhere, embedded together (batch_size inputs per forward pass), except those
  // that cannot be preprocessed (an image smaller than a tile): with `failed`, they are left out
  // and (*failed)[i] holds image i's message (empty for the others); without, the first throws.
  PatchEmbeddings embed(std::span<const Image* const> images,
                        std::vector<std::string>* failed) const;

  // The same, handed over batch by batch, for callers that keep only what they need. Throws the
  // ImageError of the first image that cannot be read; with `unreadable`, such images are left
  // out instead and (*unreadable)[i] holds image i's message (empty for the others).
  void embed_each(std::span<const std::filesystem::path> images, const EmbeddingConsumer& consume,
                  std::string_view progress_label = "embed", EmbedTimings* timings = nullptr,
                  std::vector<std::string>* unreadable = nullptr) const;

  // The same for images decoded already, checked against options().image_limits and
  // check_image() as files are (named "image <i>" in messages), with the same batches, so that
  // an image gives exactly what its file gives.
  void embed_each(std::span<const Image* const> images, const EmbeddingConsumer& consume,
                  std::string_view progress_label = "embed", EmbedTimings* timings = nullptr,
                  std::vector<std::string>* unreadable = nullptr) const;

  // Requires ready(). Hashes the weights file on first use. With `carry_weights` (or for a
  // backbone restored from carried tensors), a pretrained backbone's state holds its tensors
  // instead of naming its weights file: a model file that needs no other file.
  BackboneState state(bool carry_weights = false) const;

  GridShape grid() const;
  const EmbedderOptions& options() const;

  // The most reading and embedding one image of `width` x `height` pixels takes, in bytes, from
  // the sizes alone: its decoded and preprocessed copies and, with tiling, its scaled copy, its
  // tiles and their patch embeddings (all held until the image is scored). Thread-safe.
  std::int64_t image_bytes(int width, int height) const;
  // Throws ImageError(kTooLarge) naming `name` when an image of this header is over the pixel
  // limit of options().image_limits, or would take more than its max_bytes(): checked before
  // anything is decoded (every reader of files here does; callers holding bytes call it).
  void check_image(const ImageHeader& header, std::string_view name) const;

 private:
  struct Impl;
  explicit Embedder(std::unique_ptr<Impl> impl);
  static Embedder restore_carried(const BackboneState& state, EmbedderOptions wanted);
  void restore_precision(const BackboneState& state);
  std::unique_ptr<Impl> impl_;
};

// The threads libtorch computes with, process-wide (EmbedderOptions::threads sets it too, when a
// backbone is built): 0 = one per core. Not concurrent with embedding.
void set_compute_threads(int threads);

// An image's embedding for similarity search: the mean of its L2-normalised patch embeddings
// (`patches` = count x dim, row-major). Every patch counts equally whatever its feature norm, so
// the cosine similarity of two images compares the mix of local appearances they contain.
std::vector<float> image_embedding(std::span<const float> patches, std::size_t dim);

// The embedding of an image's anomalous region: the same mean, each patch weighted by how far its
// anomaly score (`patch_scores`, one per patch: its distance to the memory bank) lies above the
// image's median. Two images with the same kind of defect then compare alike whatever surrounds
// it (measured on the synthetic defects: twice the defect-type precision@5 of image_embedding()
// on tile). All weights zero (a uniform map) falls back to image_embedding().
std::vector<float> defect_embedding(std::span<const float> patches, std::size_t dim,
                                    std::span<const float> patch_scores);

// The cosine similarity of two embeddings of one size, in double precision; 0 when either is
// all zeros.
double cosine_similarity(std::span<const float> a, std::span<const float> b);

}  // namespace pv
