#include <algorithm>
#include <optional>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/inspector.h>
#include <patchvec/log.h>
#include <patchvec/report_spool.h>

#include "util/sha256.h"

namespace pv {

std::map<std::string, Model> load_models(const std::filesystem::path& folder,
                                         const ModelLoadOptions& options) {
  std::error_code error;
  if (!std::filesystem::is_directory(folder, error)) {
    throw Error("models folder " + folder.string() + " does not exist");
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().extension() == ".pvm") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error("no .pvm model in " + folder.string());
  std::map<std::string, Model> models;
  for (const auto& file : files) {
    Model model = Model::load(file, options);
    const std::string category = model.info().category;
    if (models.contains(category)) {
      throw Error("two models for category " + category + " in " + folder.string() + " (" +
                  file.filename().string() + " is the second)");
    }
    log::info("loaded " + category + " from " + file.string());
    models.emplace(category, std::move(model));
  }
  return models;
}

namespace {

std::map<std::string, ServedModel> as_served(std::map<std::string, Model>&& models) {
  std::map<std::string, ServedModel> out;
  for (auto& [category, model] : models) {
    out.emplace(category, ServedModel{.model = std::make_shared<const Model>(std::move(model))});
  }
  return out;
}

}  // namespace

Inspector::Inspector(std::map<std::string, Model> models, std::shared_ptr<VectorStore> store,
                     const InspectorOptions& options)
    : Inspector(as_served(std::move(models)), std::move(store), options) {}

Inspector::Inspector(std::map<std::string, ServedModel> models, std::shared_ptr<VectorStore> store,
                     const InspectorOptions& options)
    : options_(options), models_(std::move(models)), store_(std::move(store)) {
  if (models_.empty()) throw Error("an inspector needs at least one model");
  if (!store_) throw Error("an inspector needs a store");
  for (const auto& [category, served] : models_) {
    if (!served.model || served.model->info().category != category) {
      throw Error("an inspector's model of " + category + " must be one of that category");
    }
  }
  if (!options_.report_spool_dir.empty()) {
    spool_ = std::make_unique<ReportSpool>(options_.report_spool_dir);
  }
  if (options_.batching) batcher_ = std::make_unique<PredictionBatcher>(*options_.batching);
}

Inspector::~Inspector() = default;

ServedModel Inspector::served(const std::string& category) const {
  const std::lock_guard lock(mutex_);
  const auto it = models_.find(category);
  if (it == models_.end()) throw NotFoundError("unknown category '" + category + "'");
  return it->second;
}

std::shared_ptr<const Model> Inspector::model(const std::string& category) const {
  return served(category).model;
}

std::map<std::string, ServedModel> Inspector::models() const {
  const std::lock_guard lock(mutex_);
  return models_;
}

void Inspector::serve(ServedModel model) {
  if (!model.model) throw Error("an inspector cannot serve no model");
  const std::string category = model.model->info().category;
  const std::lock_guard lock(mutex_);
  models_[category] = std::move(model);
}

Inspected Inspector::inspect(const std::string& category, const Image& image,
                             const std::string& name, const InspectOptions& options) const {
  const auto m = model(category);
  Prediction prediction = m->predict(image);
  Inspection inspection = pv::inspect(*m, *store_, prediction, name, options);
  return {std::move(prediction), std::move(inspection), m, {}};
}

std::vector<Inspected> Inspector::inspect(const std::string& category,
                                          std::span<const std::filesystem::path> images,
                                          const InspectOptions& options) const {
  const auto m = model(category);
  std::vector<Prediction> predictions = m->predict(images, "inspect");
  std::vector<Inspected> out;
  out.reserve(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    Inspection inspection = pv::inspect(*m, *store_, predictions[i], images[i].string(), options);
    out.push_back({std::move(predictions[i]), std::move(inspection), m, {}});
  }
  return out;
}

Inspected Inspector::inspect(const std::string& category, const EncodedImage& image,
                             const InspectOptions& options, const TurnWaiter& wait_turn) const {
  // This call's model, to its end: a newer revision may be served meanwhile.
  const std::shared_ptr<const Model> m = model(category);
  const Embedder& backbone = m->backbone();
  // The header first: an image over the limits (its pixels, or what this model's tiles would
  // take of memory) is refused before it waits for a turn.
  backbone.check_image(read_image_header(image.bytes, image.name), image.name);
  Inspected out{.model = m};
  {
    const std::shared_ptr<void> turn = wait_turn ? wait_turn() : nullptr;
    // Announced before decoding, so that a batch starting meanwhile waits for this image.
    std::optional<PredictionBatcher::Announcement> coming;
    if (batcher_) coming.emplace(batcher_->announce(*m));
    out.image = decode_image(image.bytes, image.name, backbone.options().image_limits);
    out.prediction = batcher_ ? batcher_->predict(*m, out.image, &*coming) : m->predict(out.image);
  }
  InspectOptions with = options;
  if (!options_.report_images_dir.empty()) {
    with.keep_image = [&] { return keep_image_bytes(image.bytes); };
  }
  with.spool = spool_.get();
  out.inspection = pv::inspect(*m, *store_, out.prediction, image.name, with);
  return out;
}

// <report images dir>/<sha256>, written atomically; the same image twice is one file.
std::string Inspector::keep_image_bytes(std::span<const std::byte> bytes) const {
  const auto path = options_.report_images_dir / sha256_hex(bytes);
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    std::filesystem::create_directories(options_.report_images_dir);
    AtomicFile file(path);
    file.write(bytes);
    file.commit();
  }
  return path.string();
}

std::size_t Inspector::flush_reports() {
  return spool_ ? spool_->flush(*store_) : 0;
}

std::size_t Inspector::reports_pending() const {
  return spool_ ? spool_->pending() : 0;
}

BatcherStats Inspector::batcher_stats() const {
  return batcher_ ? batcher_->stats() : BatcherStats{};
}

ResolvedReport Inspector::resolve(std::int64_t report_id,
                                  const ReportResolution& resolution) const {
  const auto report = store_->report(report_id);
  if (!report) throw NotFoundError("no report " + std::to_string(report_id));
  std::shared_ptr<const Model> m;
  {
    const std::lock_guard lock(mutex_);
    const auto it = models_.find(report->category);
    if (it == models_.end()) {
      throw ConflictError("report " + std::to_string(report_id) + " is of category " +
                          report->category + ", which no loaded model is for");
    }
    m = it->second.model;
  }
  return resolve_report(*m, *store_, report_id, resolution);
}

}  // namespace pv
