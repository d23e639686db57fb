#include <limits>

#include <patchvec/indexing.h>
#include <patchvec/stopwatch.h>

namespace pv {
namespace {

// The rows for `category`: `train_embeddings` in the order of category.train, `test` in the
// order of category.test (an evaluation's images, judged with the model's thresholds).
std::vector<StoredImage> dataset_images(const Category& category,
                                        std::span<const std::vector<float>> train_embeddings,
                                        std::span<const ImageResult> test) {
  std::vector<StoredImage> images;
  for (std::size_t i = 0; i < category.train.size() && i < train_embeddings.size(); ++i) {
    images.push_back({.path = category.train[i].image.string(),
                      .category = category.name,
                      .split = Split::kTrain,
                      .embedding = train_embeddings[i]});
  }
  for (std::size_t i = 0; i < category.test.size() && i < test.size(); ++i) {
    const ImageResult& r = test[i];
    images.push_back({.path = category.test[i].image.string(),
                      .category = category.name,
                      .split = Split::kTest,
                      .anomalous = r.label == 1,
                      .defect = r.defect,
                      .score = r.score,
                      .verdict = r.verdict,
                      .embedding = r.label == 1 && !r.defect_embedding.empty() ? r.defect_embedding
                                                                               : r.embedding});
  }
  return images;
}

}  // namespace

IndexReport index_category(const Model& model, const Category& category,
                           std::span<const std::vector<float>> train_embeddings,
                           std::span<const ImageResult> test, VectorStore& store) {
  Stopwatch clock;
  IndexReport report;
  report.images =
      store.replace_dataset(category.name, dataset_images(category, train_embeddings, test));
  report.patches = store.replace_patches(category.name, model.memory_bank(),
                                         static_cast<std::size_t>(model.info().grid.dim));
  report.load_seconds = clock.lap();
  return report;
}

IndexReport index_category(const Model& model, const Category& category, VectorStore& store) {
  Stopwatch clock;
  std::vector<std::filesystem::path> paths;
  for (const auto* split : {&category.train, &category.test}) {
    for (const Sample& s : *split) paths.push_back(s.image);
  }
  const std::vector<Prediction> predictions = model.predict(paths, "embed " + category.name);
  IndexReport report{.embed_seconds = clock.lap()};
  std::vector<std::vector<float>> train;
  std::vector<ImageResult> test;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const Prediction& p = predictions[i];
    if (i < category.train.size()) {
      train.push_back(p.embedding);
      continue;
    }
    const Sample& s = category.test[i - category.train.size()];
    test.push_back({.relative_path = s.relative_path,
                    .defect = s.defect,
                    .label = s.anomalous() ? 1 : 0,
                    .score = p.score,
                    .verdict = p.verdict,
                    .embedding = p.embedding,
                    .defect_embedding = p.defect_embedding});
  }
  const IndexReport stored = index_category(model, category, train, test, store);
  report.images = stored.images;
  report.patches = stored.patches;
  report.load_seconds = stored.load_seconds;
  return report;
}

ModelUpdate update_model(Model& model, const std::filesystem::path& model_file, VectorStore& store,
                         std::span<const std::filesystem::path> images, bool from_reports) {
  const std::string& category = model.info().category;
  std::vector<std::filesystem::path> all(images.begin(), images.end());
  ModelUpdate update;
  if (from_reports) {
    for (const AnomalyReport& r : store.reports({.category = category,
                                  .status = "resolved",
                                  .limit = std::numeric_limits<std::size_t>::max()})) {
      if (r.resolution != kFalseAlarm || r.applied) continue;
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
