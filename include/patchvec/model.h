// A PatchCore model for one category: fit it on defect-free images, save it, load it, and score
// new images with an image score and a pixel anomaly map.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <patchvec/coreset.h>
#include <patchvec/embedder.h>
#include <patchvec/image.h>
#include <patchvec/precision.h>
#include <patchvec/search_method.h>
#include <patchvec/verdict.h>

namespace pv {

// How patch scores become a pixel map.
enum class MapUpsampling {
  kBilinear,  // default: smooth maps
  kNearest,   // anomalib's choice (F.interpolate's default), for exact comparisons with it
};
const char* upsampling_name(MapUpsampling mode);  // "bilinear", "nearest"
// The mode `name` spells; throws pv::Error naming `setting` for anything else.
MapUpsampling parse_upsampling(std::string_view name, std::string_view setting);

struct PatchCoreOptions {
  EmbedderOptions embedder;
  double coreset_ratio = 0.1;  // fraction of training patches kept in the bank; 1 = all
  CoresetMethod coreset = CoresetMethod::kFast;
  std::int64_t projection_dim = 0;  // coreset selection space; 0 = Johnson-Lindenstrauss (eps 0.9)
  int num_neighbors = 9;            // image-score re-weighting; 1 = plain maximum
  // The one seed of a fit: the random backbone's initialisation (it replaces embedder.seed), the
  // random projection and the first coreset centre.
  std::uint64_t seed = 0;
  std::int64_t max_memory_bytes =
      0;               // training patches beyond this go to a temporary file; 0 = none
  double sigma = 4.0;  // Gaussian blur of the anomaly map
  MapUpsampling upsampling = MapUpsampling::kBilinear;
  // Cross-fitting for thresholds from good images: the training images split in this many folds
  // (image i in fold i mod folds), each scored by a bank fitted on the others
  // (FitReport::held_out_scores). A random backbone's BatchNorm statistics, estimated on the
  // training images, make every image they saw look more normal; then only fold 0 is held out,
  // kept out of that estimate too. Folds are held out in turn only until `calibration_images`
  // images are (split conformal: each fold costs a coreset of the others' patches, and a 1,000-
  // image category needs one fold, not five). 0 or 1: none.
  int calibration_folds = 0;
  // Held-out images enough for any false-alarm rate down to 0.005 (the conformal quantile needs
  // 1/R - 1 of them).
  std::size_t calibration_images = 200;
  // What the model computes in. The bank is always chosen from float32 embeddings (a reduced
  // precision changes no patch that is kept); bf16 and int8 keep it in bfloat16, embed new images
  // in their precision, and score the held-out images both ways (FitReport::reference_scores).
  Precision precision = Precision::kFloat32;
  // How the held-out images (and the fitted model's predictions) search the bank: a run-time
  // setting, not recorded. Image scores are exact either way (patchcore/scorer.h).
  SearchMethod search = SearchMethod::kAuto;
};

// How a model's thresholds were set.
enum class ThresholdMethod {
  kFalseAlarmRate,  // conformal quantile of good images' scores: a stated false-alarm rate
  kF1,              // F1-optimal on a labelled test split (anomalib's default)
  kFixed,           // given by the user
};
const char* threshold_method_name(ThresholdMethod method);  // "false_alarm_rate", "f1", "fixed"

// Decision thresholds on raw scores and the statistics that normalise scores around them, as
// anomalib does: normalized = clamp((score - threshold) / (max - min) + 0.5, 0, 1). An image is
// anomalous when its score >= image; a pixel when its map value >= pixel.
struct Thresholds {
  float image = 0;
  float pixel = 0;  // kFalseAlarmRate: set on each good image's largest map value
  float image_min = 0, image_max = 1;
  float pixel_min = 0, pixel_max = 1;
  std::string source;  // in words: "false-alarm rate 0.01 on 75 good images", ...
  ThresholdMethod method = ThresholdMethod::kF1;
  double false_alarm_rate = 0;   // kFalseAlarmRate: the rate it guarantees
  std::int64_t good_images = 0;  // kFalseAlarmRate: the good images it was set on
};

// The seed's similarity rule, "similar enough to known good images", calibrated: a new good
// image's best cosine similarity to the category's good images falls below `min_similarity`
// with probability at most `false_alarm_rate` (leave-one-out similarities of good images).
struct SimilarityRule {
  float min_similarity = 0;
  double false_alarm_rate = 0;
  std::int64_t good_images = 0;
};

// A category's name is also its model's file name (<category>.pvm): 1 to 100 bytes of UTF-8
// without '/', control characters or a leading '.'. Throws pv::Error otherwise.
void check_category_name(const std::string& name);

// anomalib's min-max normalisation around a threshold: the threshold maps to 0.5.
float normalize_score(float score, float threshold, float min, float max);

// Raw pixel scores, row-major: at the crop size, or with tiling at the scaled image's size.
struct AnomalyMap {
  int width = 0;
  int height = 0;
  std::vector<float> values;
};

// `map` (raw scores at the crop size) mapped back onto a whole original image of width x height:
// the crop's region resampled bilinearly, NaN where the model's centre crop cut the image away.
// For comparing with other tools or post-processing; pictures use render::original_overlay.
AnomalyMap map_on_original(const AnomalyMap& map, int image_size, int crop_size, int width,
                           int height);

struct Prediction {
  float score = 0;          // raw image score; with tiling, the highest of its tiles' scores
  float normalized = 0.5f;  // see Thresholds; 0.5 means "at the threshold"; NaN without thresholds
  // kAnomalous when score >= the image threshold; kUnknown when the model has no thresholds.
  Verdict verdict = Verdict::kUnknown;
  // At the crop size; with tiling, at the scaled image's size (TileLayout::width x height).
  AnomalyMap map;
  // grid.height x grid.width (with tiling, that for each tile in the layout's order): each patch's
  // distance to its nearest bank patch.
  std::vector<float> patch_distances;
  std::vector<float> embedding;  // image embedding for similarity search (image_embedding())
  // The embedding of the anomalous region: patches weighted by how far above the image's median
  // patch distance they score (defect_embedding()). What "closest known defects" compares.
  std::vector<float> defect_embedding;
};

// How a reduced-precision model's decisions compare with float32's, measured when it was trained
// (the agreement check, pv::train_category): its calibration images, the held-out good images its
// thresholds were set on, scored by the model at its precision and at float32, each against its
// own thresholds.
struct PrecisionAgreement {
  std::int64_t images = 0;             // calibration images scored both ways
  double max_relative_difference = 0;  // max |score - float32 score| / float32 score
  double rank_correlation = 1;         // Spearman's, between the two orders
  std::int64_t verdict_flips = 0;      // calibration images judged otherwise than by float32
  // Image AUROC on the labelled test split at this precision and with the float32 backbone (same
  // bank); NaN when there was no such split.
  double auroc = std::numeric_limits<double>::quiet_NaN();
  double auroc_fp32 = std::numeric_limits<double>::quiet_NaN();
};

// How the shortlist search (SearchMethod::kShortlist) compared with the exact one when the model
// was trained: the first held-out calibration images scored both ways against the bank fitted
// without them. Recorded when the shortlist scored them (by --search, or auto's choice).
struct ShortlistCheck {
  std::int64_t images = 0;   // held-out images scored both ways
  std::int64_t patches = 0;  // their patches
  double recall_at_1 = 1;    // fraction of patches given their exact nearest distance
  // Largest (shortlist - exact) / exact nearest distance of a patch (a miss is never nearer).
  double max_relative_error = 0;
  std::int64_t score_differences = 0;  // images scored otherwise than exactly (0 by design)
};

struct ModelInfo {
  std::string category;
  std::string created;  // ISO 8601, UTC
  BackboneState backbone;
  bool pretrained = false;
  // The options the model was fitted with, as far as they shape it: the embedder's image and crop
  // sizes and tiling (with tiling, the sizes read as the tile size and no crop; its backbone,
  // weights and seed are `backbone`'s), the coreset ratio, the projection
  // dimension actually used (resolved when 0 was asked for), the coreset seed, and scoring
  // (num_neighbors, sigma, upsampling). Run-time settings (threads, batch size, memory budget,
  // calibration folds) are not kept.
  PatchCoreOptions options;
  GridShape grid;
  std::int64_t bank_size = 0;
  std::int64_t train_images = 0;
  std::int64_t train_patches = 0;
  double covering_radius = 0;  // of the coreset, in the projected space
  std::optional<Thresholds> thresholds;
  std::optional<SimilarityRule> similarity;
  std::int64_t revision = 1;  // incremented by every update (add_normal_images)
  // The precision the model was trained and calibrated in is backbone.precision (and
  // options.precision); for a reduced one, what the agreement check measured.
  std::optional<PrecisionAgreement> agreement;
  std::optional<ShortlistCheck> shortlist_check;
};

struct FitReport {
  double batchnorm_seconds = 0;  // BatchNorm re-estimation (random backbone only)
  double embed_seconds = 0;      // reading images and the backbone
  double project_seconds = 0;    // random projection (included in embed_seconds)
  // Coreset selection: with the fast method and cross-fitting, the first fold's bank and the
  // model's, continued from it (one selection's work), both counted here, not in calibration.
  double coreset_seconds = 0;
  double total_seconds = 0;
  bool spilled = false;                // training patches went to a temporary file
  std::int64_t peak_memory_bytes = 0;  // of the process so far
  // With PatchCoreOptions::calibration_folds: the training images (their indices) scored by a
  // bank fitted without them, their scores and their anomaly maps' largest values.
  std::vector<std::size_t> held_out_images;
  std::vector<float> held_out_scores;
  std::vector<float> held_out_map_maxima;
  // At a reduced PatchCoreOptions::precision the held-out scores above are the model's (its
  // backbone's precision, the bank in bfloat16); these are the same images at float32 (float32
  // embeddings, float32 bank): what the agreement check compares them with.
  std::vector<float> reference_scores;
  std::vector<float> reference_map_maxima;
  // The cross-fit (the held-out folds' coresets but the one coreset_seconds counts, and their
  // scores, at both precisions) and, for int8,
  // measuring its activation ranges: the thresholds' share of total_seconds.
  double calibration_seconds = 0;
  // When the held-out images were scored through the shortlist: how it compared with the exact
  // search on the first of them (ModelInfo::shortlist_check).
  std::optional<ShortlistCheck> shortlist_check;
};

// What Model::add_normal_images() did.
struct UpdateReport {
  std::int64_t images = 0;         // added
  std::int64_t patches = 0;        // their patches
  std::int64_t centres_added = 0;  // of those, kept in the memory bank
  double covering_radius_before = 0;
  double covering_radius_after = 0;  // over every training patch so far, projected space
  double seconds = 0;
};

struct PredictTimings {
  double read_seconds = 0;      // decoding and preprocessing
  double backbone_seconds = 0;  // network and patch features
  double search_seconds = 0;    // nearest neighbours and image scores
  double map_seconds = 0;       // upsampling and blur
  std::int64_t images = 0;
  std::int64_t recomputed_in_float32 = 0;  // int8 inputs computed again (EmbedTimings)
  // With the shortlist search: patches measured exactly for their image's exact score.
  std::int64_t remeasured_patches = 0;
};

// Changes to the tiling a model was trained with, field by field (what is not set stays).
struct TilingOverride {
  std::optional<int> size;  // 0 turns tiling off; on a model trained without it, turns it on
  std::optional<int> overlap;
  std::optional<double> scale;
  bool empty() const { return !size && !overlap && !scale; }
};

// Lets models share a backbone: models loaded with one cache whose backbones have the same
// architecture, weights (by SHA-256; a random backbone's BatchNorm statistics, re-estimated per
// category, count as weights) and preprocessing hold one copy in memory. A copy lives as long as
// a model holds it. Thread-safe.
class BackboneCache {
 public:
  BackboneCache();
  ~BackboneCache();
  BackboneCache(const BackboneCache&) = delete;
  BackboneCache& operator=(const BackboneCache&) = delete;

  std::size_t size() const;  // distinct backbones alive

 private:
  friend class Model;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ModelLoadOptions {
  std::filesystem::path weights;  // overrides the weights path stored in the model (same SHA-256)
  int threads = 0;
  int batch_size = 8;
  ImageLimits image_limits;  // for predict() on files
  // Share identical backbones with the other models loaded with this cache (none: its own).
  std::shared_ptr<BackboneCache> backbones;
  // Predict with other tiles than training used (ModelInfo then records these). The overlap is
  // harmless to change; the scale should stay what training saw, or the patches compared to the
  // bank show the surface at another magnification.
  TilingOverride tiling;
  // The precision to run in: the model's own (ModelInfo::backbone.precision) or fp32 (the
  // reference any model can run in). Another reduced precision was never checked against the
  // model's thresholds and is refused, as is one this CPU does not run natively
  // (require_precision()). nullopt: the model's own, or fp32 when this CPU cannot run it (said
  // once in the log).
  std::optional<Precision> precision;
  // How predictions search the bank (kAuto: by its size and this CPU, resolve_search_method()).
  // Image scores are exact either way; with the shortlist a patch whose nearest bank vector is
  // missed shows a larger distance in the map (docs/performance.md, "Large banks").
  SearchMethod search = SearchMethod::kAuto;
};

// A model file that is missing, truncated, corrupt, invalid or of an incompatible version
// (Model::load); a file that is fine but needs weights this machine lacks is a pv::Error.
class ModelFileError : public Error {
 public:
  using Error::Error;
};

// A loaded model is read-only: predict() may run on many threads at once. The setters and
// save() must not overlap with anything else.
class Model {
 public:
  // Fits the memory bank on defect-free images. Throws pv::Error for unreadable images, bad
  // options or weights (see Embedder). With `image_embeddings`, also returns each training
  // image's embedding for similarity search (image_embedding()), in the order of `images`.
  static Model fit(std::span<const std::filesystem::path> images, std::string category,
                   const PatchCoreOptions& options, FitReport* report = nullptr,
                   std::vector<std::vector<float>>* image_embeddings = nullptr);

  // A model around a memory bank chosen elsewhere (an anomalib checkpoint's): `bank` holds
  // info.bank_size x grid.dim floats in `embedder`'s patch space, and the bank's neighbour lists
  // are computed here. The embedder fills info's backbone, pretrained, sizes and grid; a
  // pretrained backbone's weights are carried in the model file when it is saved. Throws
  // pv::Error when the bank's size disagrees or it holds NaN or infinite values.
  static Model from_bank(Embedder embedder, std::span<const float> bank, ModelInfo info);
  // Reads a model file and rebuilds its backbone. Every field and section is validated (a
  // checksum proves a file unchanged, not valid). Throws pv::Error naming the file and the field
  // for a missing, truncated, corrupt, invalid or incompatible file, or missing/different weights.
  static Model load(const std::filesystem::path& path, const ModelLoadOptions& options = {});

  // Writes the model atomically (temporary file + rename).
  void save(const std::filesystem::path& path) const;

  // One prediction per image, in order. Throws the ImageError of the first image that cannot be
  // read; with `unreadable`, such images are skipped instead: (*unreadable)[i] holds image i's
  // message and its prediction has a NaN score and no map (for the others it is empty).
  std::vector<Prediction> predict(std::span<const std::filesystem::path> images,
                                  std::string_view progress_label = "predict",
                                  PredictTimings* timings = nullptr,
                                  std::vector<std::string>* unreadable = nullptr) const;
  // The same for images decoded already, read in the same batches as files (an image gives
  // exactly the prediction of the file it was decoded from). Messages name "image <i>".
  std::vector<Prediction> predict(std::span<const Image* const> images,
                                  std::string_view progress_label = "predict",
                                  PredictTimings* timings = nullptr,
                                  std::vector<std::string>* unreadable = nullptr) const;
  Prediction predict(const Image& image) const;

  // The backbone this model embeds with (shared with other models of one BackboneCache).
  const Embedder& backbone() const;
  // Predictions of images `backbone()` embedded already (Embedder::embed, in order): what
  // predict() does after the network. For callers that run the network for several models at
  // once (pv::PredictionBatcher).
  std::vector<Prediction> score(const PatchEmbeddings& embeddings) const;

  // Adds good images without refitting: their patches are embedded, and the greedy k-center
  // selection continues from the current memory bank, keeping each new patch that lies farther
  // than the bank's covering radius from every centre (farthest first, in the projected space
  // the coreset was chosen in), until every new patch is covered; then the bank's neighbour lists
  // are recomputed and the revision incremented. Scores change only where the new patches are
  // nearer than the old bank. Thresholds are kept (good images can only score lower). Throws the
  // ImageError of an image that cannot be read; the model is unchanged then.
  UpdateReport add_normal_images(std::span<const std::filesystem::path> images);

  void set_thresholds(const Thresholds& thresholds);
  void set_similarity_rule(const SimilarityRule& rule);
  void set_agreement(const PrecisionAgreement& agreement);
  float normalize_image(float score) const;  // NaN without thresholds
  float normalize_pixel(float score) const;
  // normalize_pixel() of every value of a map, for pictures: 0 where it is NaN (no thresholds).
  std::vector<float> normalize_map(const AnomalyMap& map) const;

  const ModelInfo& info() const;
  // The memory bank: info().bank_size x info().grid.dim floats, row-major (a copy; a
  // reduced-precision model keeps it in bfloat16, which widens exactly).
  std::vector<float> memory_bank() const;

  // The precision predictions run in (ModelLoadOptions::precision).
  Precision precision() const;
  // How predictions search the bank: kExact or kShortlist (ModelLoadOptions::search resolved).
  SearchMethod search_method() const;
  // This model running in `precision`: its own or fp32 (anything else throws pv::Error). Shares
  // the backbone and the bank: cheap. A loaded reduced-precision model in fp32 runs its bfloat16
  // bank with the float32 backbone; a freshly fitted one (Model::fit, not yet saved and loaded)
  // still holds its float32 bank, and becomes the model fitting in fp32 gives: float32 bank,
  // precision fp32, no thresholds (set them). For comparing a reduced precision with float32.
  Model with_precision(Precision precision) const;

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  static Model fit_impl(std::span<const std::filesystem::path> images, std::string category,
                        const PatchCoreOptions& options, FitReport* report,
                        std::vector<std::vector<float>>* image_embeddings);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pv
