// Inspecting an image against a model and a vector store, the way the seed's quality engineers
// asked for it: if the image is normal and similar enough to known images, show the most similar
// ones; otherwise report it as an anomaly and show the closest known defects.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <patchvec/model.h>
#include <patchvec/store.h>

namespace pv {

inline constexpr double kDefaultMinSimilarity = 0.9;

struct InspectOptions {
  std::size_t k = 10;
  double min_similarity = kDefaultMinSimilarity;  // cosine, to the closest normal image
  bool report = true;  // write an anomaly report to the store for anomalous verdicts
};

struct Inspection {
  std::string path;
  std::string category;
  bool anomalous = false;
  std::string reason;  // why, in words: "score 31.2 >= threshold 27.0", ...
  float score = 0;
  float normalized = 0;        // NaN without thresholds
  float threshold = 0;         // NaN without thresholds
  double best_similarity = 0;  // to the closest stored normal image of the category; 0 if none
  // Normal verdict: the k most similar normal images. Anomalous: the k closest known defects.
  std::vector<Match> matches;
  std::optional<std::int64_t> report_id;
};

// Judges one predicted image: normal when its score is below the model's image threshold (if the
// model has one) and its best similarity to the category's normal images reaches
// `min_similarity`. Searches only the model's category: each category's model has its own
// embedding space. Throws pv::Error when the store holds no normal image of the category.
Inspection inspect(const Model& model, VectorStore& store, const Prediction& prediction,
                   const std::string& path, const InspectOptions& options = {});

}  // namespace pv
