// An inspection station: the models of several categories and one vector store, answering
// "is this image normal, and what does it look like" for any of them. What `patchvec search`
// and the HTTP service both inspect with.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

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
  Inspector(std::map<std::string, Model> models, std::unique_ptr<VectorStore> store);
  Inspector(std::map<std::string, ServedModel> models, std::unique_ptr<VectorStore> store);

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

  // An operator's decision on a report, carried out with the model of the report's category
  // (pv::resolve_report()). Throws NotFoundError for an unknown report, ConflictError for one
  // resolved already or of a category without a model here, pv::Error for a bad resolution.
  ResolvedReport resolve(std::int64_t report_id, const ReportResolution& resolution) const;

 private:
  mutable std::mutex mutex_;  // guards models_ (the models themselves are immutable)
  std::map<std::string, ServedModel> models_;
  std::unique_ptr<VectorStore> store_;
};

}  // namespace pv
