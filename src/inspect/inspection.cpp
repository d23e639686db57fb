#include <cmath>
#include <cstdio>
#include <limits>

#include <patchvec/error.h>
#include <patchvec/inspection.h>

namespace pv {
namespace {

std::string format_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", value);
  return text;
}

}  // namespace

Inspection inspect(const Model& model, VectorStore& store, const Prediction& prediction,
                   const std::string& path, const InspectOptions& options) {
  const ModelInfo& info = model.info();
  Inspection result;
  result.path = path;
  result.category = info.category;
  result.score = prediction.score;
  result.normalized = prediction.normalized;
  result.threshold =
      info.thresholds ? info.thresholds->image : std::numeric_limits<float>::quiet_NaN();

  const std::vector<Match> normal = store.nearest(prediction.embedding, options.k,
                                                  {.category = info.category, .anomalous = false});
  if (normal.empty()) {
    throw Error(store.location() + " holds no normal image of category '" + info.category +
                "': index the category first (patchvec index)");
  }
  result.best_similarity = normal.front().similarity;
  const bool too_different = result.best_similarity < options.min_similarity;
  if (prediction.anomalous) {
    result.reason = "score " + format_number(prediction.score) + " >= threshold " +
                    format_number(result.threshold);
  } else if (too_different) {
    result.reason = "best similarity " + format_number(result.best_similarity) + " < " +
                    format_number(options.min_similarity);
  } else {
    result.reason = "score below threshold, similar to known good images";
  }
  result.anomalous = prediction.anomalous || too_different;
  if (!result.anomalous) {
    result.matches = normal;
    return result;
  }
  result.matches = store.nearest(prediction.embedding, options.k,
                                 {.category = info.category, .anomalous = true});
  if (options.report) {
    result.report_id = store.add_report({.path = path,
                                         .category = info.category,
                                         .score = prediction.score,
                                         .threshold = result.threshold,
                                         .best_similarity = result.best_similarity,
                                         .matches = result.matches});
  }
  return result;
}

}  // namespace pv
