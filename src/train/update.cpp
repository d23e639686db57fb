#include <limits>

#include <patchvec/update.h>

namespace pv {

ModelUpdate update_model(Model& model, const std::filesystem::path& model_file, VectorStore& store,
                         std::span<const std::filesystem::path> images, bool from_reports) {
  const std::string& category = model.info().category;
  std::vector<std::filesystem::path> all(images.begin(), images.end());
  ModelUpdate update;
  if (from_reports) {
    for (const AnomalyReport& r : store.reports({.category = category,
                                  .status = ReportStatus::kResolved,
                                  .limit = std::numeric_limits<std::size_t>::max()})) {
      if (r.resolution != Resolution::kFalseAlarm || r.applied) continue;
      all.push_back(r.image.empty() ? r.path : r.image);
      update.reports_applied.push_back(r.id);
    }
  }
  update.bank = model.add_normal_images(all);
  model.save(model_file);
  if (!images.empty()) {
    const std::vector<Prediction> predictions = model.predict(images, "store new images");
    for (std::size_t i = 0; i < images.size(); ++i) {
      store.add_image({.path = images[i].string(),
                       .category = category,
                       .split = Split::kAdded,
                       .score = predictions[i].score,
                       .verdict = predictions[i].verdict,
                       .embedding = predictions[i].embedding});
      ++update.images_stored;
    }
  }
  if (!update.reports_applied.empty()) store.mark_applied(update.reports_applied);
  return update;
}

}  // namespace pv
