#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <patchvec/embedder.h>
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

// What a store keeps for an image predicted as `p` (dataset_images(), add-anomaly).
const std::vector<float>& stored_embedding(const Prediction& p, bool anomalous) {
  return anomalous && !p.defect_embedding.empty() ? p.defect_embedding : p.embedding;
}

// The images copy_category() predicts again: the first readable normal and defective ones, and
// the first readable one with a score if neither of those has one.
std::vector<const StoredImage*> images_to_verify(std::span<const StoredImage> images) {
  const StoredImage* normal = nullptr;
  const StoredImage* defective = nullptr;
  const StoredImage* scored = nullptr;
  for (const StoredImage& image : images) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(image.path, error)) continue;
    const StoredImage*& slot = image.anomalous ? defective : normal;
    if (slot == nullptr) slot = &image;
    if (scored == nullptr && image.score) scored = &image;
  }
  std::vector<const StoredImage*> chosen;
  for (const StoredImage* image : {normal, defective}) {
    if (image != nullptr) chosen.push_back(image);
  }
  const bool has_score = std::any_of(chosen.begin(), chosen.end(),
                                     [](const StoredImage* image) { return image->score; });
  if (!has_score && scored != nullptr) chosen.push_back(scored);
  return chosen;
}

// Throws unless `image`, as stored in `from`, is what `model` makes of its file.
void verify_copy(const Model& model, const VectorStore& from, const StoredImage& image,
                 const Prediction& p) {
  const std::string where = "image " + image.path + " in " + from.location();
  const std::string advice = ": it was not indexed with this model (" + model.info().category +
                             "); index the category from its images instead";
  const std::vector<float>& expected = stored_embedding(p, image.anomalous);
  if (image.embedding.size() != expected.size()) {
    throw Error(where + " has a " + std::to_string(image.embedding.size()) +
                "-dimensional embedding, the model makes " + std::to_string(expected.size()) +
                advice);
  }
  const double similarity = cosine_similarity(image.embedding, expected);
  char text[160];
  if (!(similarity >= 0.9999)) {
    std::snprintf(text, sizeof text, "%.6f", similarity);
    throw Error(where + ": its stored embedding and the model's have cosine similarity " + text +
                advice);
  }
  if (!image.score) return;
  if (!(std::abs(*image.score - p.score) <= 1e-3 * std::max(1.0f, std::abs(p.score)))) {
    std::snprintf(text, sizeof text, "%g, the model scores it %g", double(*image.score),
                  double(p.score));
    throw Error(where + " has the score " + text + advice);
  }
  if (image.verdict != p.verdict) {
    throw Error(where + " has the verdict " + std::string(verdict_name(image.verdict)) +
                ", the model's is " + verdict_name(p.verdict) + advice);
  }
}

bool same_image(const StoredImage& a, const StoredImage& b) {
  return a.path == b.path && a.anomalous == b.anomalous && a.defect == b.defect &&
         a.embedding == b.embedding;
}

}  // namespace

IndexReport copy_category(const Model& model, const VectorStore& from, VectorStore& to) {
  const std::string& category = model.info().category;
  if (from.location() == to.location()) {
    throw Error("cannot copy " + category + " from " + from.location() + " into itself");
  }
  Stopwatch clock;
  const std::vector<StoredImage> images = from.images(category);
  if (images.empty()) throw Error(from.location() + " has no images of " + category);
  const std::vector<const StoredImage*> chosen = images_to_verify(images);
  if (chosen.empty()) {
    throw Error("cannot verify the copy of " + category + " from " + from.location() +
                ": none of its images can be read (e.g. " + images.front().path +
                "; relative paths are read from the working directory)");
  }
  std::vector<std::filesystem::path> paths;
  paths.reserve(chosen.size());
  for (const StoredImage* image : chosen) paths.emplace_back(image->path);
  const std::vector<Prediction> predictions = model.predict(paths, "verify " + category);
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    verify_copy(model, from, *chosen[i], predictions[i]);
  }
  IndexReport report{.verified = chosen.size(), .embed_seconds = clock.lap()};

  std::vector<StoredImage> dataset;
  std::vector<StoredImage> added;
  for (const StoredImage& image : images) {
    (image_source(image.split) == ImageSource::kAdded ? added : dataset).push_back(image);
  }
  report.images = to.replace_dataset(category, dataset);
  if (!added.empty()) {
    std::vector<StoredImage> present;
    for (StoredImage& image : to.images(category)) {
      if (image_source(image.split) == ImageSource::kAdded) present.push_back(std::move(image));
    }
    for (const StoredImage& image : added) {
      const bool stored = std::any_of(present.begin(), present.end(),
                                      [&](const StoredImage& p) { return same_image(p, image); });
      if (stored) continue;
      to.add_image(image);
      ++report.images;
    }
  }
  report.load_seconds = clock.lap();
  return report;
}

IndexReport index_category(const Model& model, const Category& category,
                           std::span<const std::vector<float>> train_embeddings,
                           std::span<const ImageResult> test, VectorStore& store) {
  Stopwatch clock;
  IndexReport report;
  report.images =
      store.replace_dataset(category.name, dataset_images(category, train_embeddings, test));
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
  report.load_seconds = stored.load_seconds;
  return report;
}

}  // namespace pv
