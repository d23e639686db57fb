#include <cmath>
#include <cstdio>
#include <limits>

#include <patchvec/dataset.h>
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

double min_similarity(const Model& model, const InspectOptions& options) {
  if (options.min_similarity) return *options.min_similarity;
  const auto& rule = model.info().similarity;
  return rule ? rule->min_similarity : kDefaultMinSimilarity;
}

Inspection inspect(const Model& model, VectorStore& store, const Prediction& prediction,
                   const std::string& path, const InspectOptions& options) {
  const double minimum = min_similarity(model, options);
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
  // Not indexed yet: the model alone decides (a trained model needs no stored image for that).
  const bool comparable = !normal.empty();
  if (!comparable) {
    result.note = "no stored images of this category: patchvec index --model " + info.category +
                  ".pvm --data DIR stores them; until then no similar images are shown";
  } else {
    result.best_similarity = normal.front().similarity;
  }
  const bool too_different = comparable && result.best_similarity < minimum;
  const bool score_says_anomalous = prediction.verdict == Verdict::kAnomalous;
  if (score_says_anomalous) {
    result.reason = "score " + format_number(prediction.score) + " >= threshold " +
                    format_number(result.threshold);
  } else if (too_different) {
    result.reason =
        "best similarity " + format_number(result.best_similarity) + " < " + format_number(minimum);
  } else if (!comparable) {
    result.reason =
        info.thresholds
            ? "score below threshold (no stored images to compare with)"
            : "no threshold and no stored images to compare with: nothing says anomalous";
  } else {
    result.reason = "score below threshold, similar to known good images";
  }
  result.verdict = verdict_of(score_says_anomalous || too_different);
  if (result.verdict == Verdict::kNormal) {
    result.matches = normal;
    return result;
  }
  const auto& query =
      prediction.defect_embedding.empty() ? prediction.embedding : prediction.defect_embedding;
  result.matches = store.nearest(query, options.k, {.category = info.category, .anomalous = true});
  if (options.report) {
    AnomalyReport report{.path = path,
                         .category = info.category,
                         .score = prediction.score,
                         .threshold = result.threshold,
                         .best_similarity = result.best_similarity,
                         .matches = result.matches,
                         .image = options.keep_image ? options.keep_image() : path};
    if (options.spool != nullptr) {
      result.report_id = options.spool->add(store, std::move(report));
      result.report_pending = !result.report_id;
    } else {
      result.report_id = store.add_report(report);
    }
  }
  return result;
}

ResolvedReport resolve_report(const Model& model, VectorStore& store, std::int64_t report_id,
                              const ReportResolution& resolution) {
  check_resolution(resolution);
  const auto report = store.report(report_id);
  if (!report) throw NotFoundError("no report " + std::to_string(report_id));
  if (report->status == ReportStatus::kResolved) throw already_resolved(*report);
  const ModelInfo& info = model.info();
  if (report->category != info.category) {
    throw Error("report " + std::to_string(report_id) + " is of category " + report->category +
                ", the model of " + info.category);
  }
  const std::filesystem::path image = report->image.empty() ? report->path : report->image;
  std::vector<Prediction> predictions;
  try {
    predictions = model.predict(std::span(&image, 1), "");
  } catch (const ImageError& e) {
    throw ConflictError("report " + std::to_string(report_id) +
                        ": its image cannot be read any more, so it cannot join the store (" +
                        e.what() + ")");
  }
  const Prediction& p = predictions.front();
  const bool defect = resolution.resolution == Resolution::kDefect;
  return store.resolve_report(report_id, resolution,
                              StoredImage{.path = image.string(),
                                          .category = info.category,
                                          .split = Split::kAdded,
                                          .anomalous = defect,
                                          .defect = defect ? resolution.defect : kGoodLabel,
                                          .score = p.score,
                                          .verdict = p.verdict,
                                          .embedding = defect ? p.defect_embedding : p.embedding});
}

}  // namespace pv
