// An inspection station: the models of several categories and one vector store, answering
// "is this image normal, and what does it look like" for any of them. What `patchvec search`
// and the HTTP service both inspect with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <patchvec/batcher.h>
#include <patchvec/image.h>
#include <patchvec/inspection.h>
#include <patchvec/model.h>
#include <patchvec/model_registry.h>
#include <patchvec/store.h>

namespace pv {

// Every <category>.pvm directly inside `folder`, loaded with `options`, by category. Throws
// pv::Error for a missing folder, a folder without models, two models of one category, or a
// model that does not load (naming the file).
std::map<std::string, Model> load_models(const std::filesystem::path& folder,
                                         const ModelLoadOptions& options = {});

// A prediction and the inspection made from it (the prediction carries the anomaly map).
struct Inspected {
  Prediction prediction;
  Inspection inspection;
  std::shared_ptr<const Model> model;  // the model that answered (another may be served now)
  Image image;  // the decoded image, for inspections of encoded bytes (to draw the map over)
};

// An image as it arrives from outside (an upload, a camera's frame): encoded bytes and a name.
struct EncodedImage {
  std::span<const std::byte> bytes;  // kSupportedImageFormats
  std::string name;                  // what messages and reports call it: a file name, "upload"
};

// Waits for the caller's turn to decode and score an image, and returns what holds the turn
// (released when the last copy is destroyed); throws to refuse. Bounds the memory of inspections
// at once: the service's slots.
using TurnWaiter = std::function<std::shared_ptr<void>()>;

struct InspectorOptions {
  // Predictions of encoded images run through one PredictionBatcher with these options (callers
  // on many threads, one compute thread); nullopt: each on its caller's thread.
  std::optional<BatcherOptions> batching;
  // Where the bytes of reported encoded images are kept for the operator's decision:
  // <dir>/<sha256>, written atomically, the same image twice one file. Empty: not kept (the
  // report's image is the name it came with).
  std::filesystem::path report_images_dir;
  // Reports the store cannot take now wait here (ReportSpool) until flush_reports(); empty:
  // the store's UnavailableError is thrown.
  std::filesystem::path report_spool_dir;
};

// A model as an inspector serves it: where it came from, so that clients can tell which one
// answered.
struct ServedModel {
  std::shared_ptr<const Model> model;
  std::string sha256;                       // of its file's bytes (empty when not known)
  std::optional<PublishedModel> published;  // when it came from a ModelRegistry
};

// Thread-safety: everything but the constructor may be called from many threads at once
// (models predict concurrently; the store serialises what it must). serve() swaps a category's
// model atomically: calls that began with the previous one finish with it.
class Inspector {
 public:
  // Throws pv::Error when `models` is empty.
  Inspector(std::map<std::string, Model> models, std::shared_ptr<VectorStore> store,
            const InspectorOptions& options = {});
  Inspector(std::map<std::string, ServedModel> models, std::shared_ptr<VectorStore> store,
            const InspectorOptions& options = {});
  ~Inspector();
  Inspector(const Inspector&) = delete;
  Inspector& operator=(const Inspector&) = delete;

  // The model of `category`; throws NotFoundError ("unknown category 'wood'") for none. Holding
  // the pointer keeps that model alive across a serve() of another.
  std::shared_ptr<const Model> model(const std::string& category) const;
  ServedModel served(const std::string& category) const;
  std::map<std::string, ServedModel> models() const;  // a snapshot
  // Serves `model` for its category from now on, replacing the one served (or adding one).
  void serve(ServedModel model);
  VectorStore& store() const { return *store_; }

  // Scores `image` with the category's model and inspects it (pv::inspect()). Throws
  // NotFoundError for an unknown category, and what predict() and inspect() throw.
  Inspected inspect(const std::string& category, const Image& image, const std::string& name,
                    const InspectOptions& options = {}) const;
  // The same for image files, read and scored in batches; results in the order of `images`.
  std::vector<Inspected> inspect(const std::string& category,
                                 std::span<const std::filesystem::path> images,
                                 const InspectOptions& options = {}) const;
  // The use case of an image from outside, whoever brings it (the service, a station): the
  // category's model (NotFoundError), the header against that model's limits (ImageError before
  // any wait), `wait_turn` (if given), decoding, the prediction (batched with concurrent calls
  // when InspectorOptions::batching), then pv::inspect() with the bytes kept and the report
  // spooled as InspectorOptions say (`options.keep_image` and `options.spool` are set here). The
  // turn is held until the prediction is done. Throws ImageError for bytes that are no image of
  // the limits, and what inspect() throws.
  Inspected inspect(const std::string& category, const EncodedImage& image,
                    const InspectOptions& options = {}, const TurnWaiter& wait_turn = {}) const;

  // An operator's decision on a report, carried out with the model of the report's category
  // (pv::resolve_report()). Throws NotFoundError for an unknown report, ConflictError for one
  // resolved already or of a category without a model here, pv::Error for a bad resolution.
  ResolvedReport resolve(std::int64_t report_id, const ReportResolution& resolution) const;

  // Stores the spooled reports the store takes now (ReportSpool::flush()); returns how many.
  // 0 without a spool.
  std::size_t flush_reports();
  std::size_t reports_pending() const;  // in the spool
  BatcherStats batcher_stats() const;   // zeros without batching

 private:
  std::string keep_image_bytes(std::span<const std::byte> bytes) const;

  InspectorOptions options_;
  mutable std::mutex mutex_;  // guards models_ (the models themselves are immutable)
  std::map<std::string, ServedModel> models_;
  std::shared_ptr<VectorStore> store_;  // shared with whoever opened it (the Python module)
  std::unique_ptr<ReportSpool> spool_;
  std::unique_ptr<PredictionBatcher> batcher_;  // last: destroyed first, finishing its queue
};

}  // namespace pv
