#include <algorithm>

#include <patchvec/error.h>
#include <patchvec/inspector.h>
#include <patchvec/log.h>

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

Inspector::Inspector(std::map<std::string, Model> models, std::unique_ptr<VectorStore> store)
    : models_(std::move(models)), store_(std::move(store)) {
  if (models_.empty()) throw Error("an inspector needs at least one model");
  if (!store_) throw Error("an inspector needs a store");
}

const Model& Inspector::model(const std::string& category) const {
  const auto it = models_.find(category);
  if (it == models_.end()) throw NotFoundError("unknown category '" + category + "'");
  return it->second;
}

Inspected Inspector::inspect(const std::string& category, const Image& image,
                             const std::string& name, const InspectOptions& options) const {
  const Model& m = model(category);
  Prediction prediction = m.predict(image);
  Inspection inspection = pv::inspect(m, *store_, prediction, name, options);
  return {std::move(prediction), std::move(inspection)};
}

Inspection Inspector::inspect(const std::string& category, const Prediction& prediction,
                              const std::string& name, const InspectOptions& options) const {
  return pv::inspect(model(category), *store_, prediction, name, options);
}

std::vector<Inspected> Inspector::inspect(const std::string& category,
                                          std::span<const std::filesystem::path> images,
                                          const InspectOptions& options) const {
  const Model& m = model(category);
  std::vector<Prediction> predictions = m.predict(images, "inspect");
  std::vector<Inspected> out;
  out.reserve(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    Inspection inspection = pv::inspect(m, *store_, predictions[i], images[i].string(), options);
    out.push_back({std::move(predictions[i]), std::move(inspection)});
  }
  return out;
}

ResolvedReport Inspector::resolve(std::int64_t report_id,
                                  const ReportResolution& resolution) const {
  const auto report = store_->report(report_id);
  if (!report) throw NotFoundError("no report " + std::to_string(report_id));
  const auto it = models_.find(report->category);
  if (it == models_.end()) {
    throw ConflictError("report " + std::to_string(report_id) + " is of category " +
                        report->category + ", which no loaded model is for");
  }
  return resolve_report(it->second, *store_, report_id, resolution);
}

}  // namespace pv
