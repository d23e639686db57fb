// Evaluating a model on a category's labelled test split: AUROC, PRO, F1-optimal thresholds,
// per-image results, and pictures (overlays, ROC curves).
#pragma once

#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <patchvec/dataset.h>
#include <patchvec/metrics.h>
#include <patchvec/model.h>

namespace pv {

struct ImageResult {
  std::string relative_path;            // under the category folder, e.g. "test/crack/003.png"
  std::string defect;                   // folder name, "good" for normal images
  int label = 0;                        // 1 = anomalous
  float score = 0;                      // raw
  float map_max = 0;                    // the anomaly map's largest value
  float normalized = 0;                 // with the thresholds in use (see EvaluationReport)
  Verdict verdict = Verdict::kUnknown;  // with those thresholds; kUnknown without any
  std::vector<float> embedding;         // for similarity search (image_embedding())
  std::vector<float> defect_embedding;  // of the anomalous region (defect_embedding())
};

// A threshold's consequences on the test split.
struct OperatingPoint {
  float threshold = 0;
  double false_alarm_rate = 0;  // good images flagged
  double detection_rate = 0;    // defective images flagged
};

struct EvaluationReport {
  std::string category;
  double image_auroc = 0;
  double pixel_auroc = 0;  // NaN when no test image has a mask
  double pro = 0;          // NaN when no test image has a mask
  Thresholds computed;     // F1-optimal on this data
  Thresholds used;         // the model's own when it has them, else `computed`
  bool used_model_thresholds = false;
  double image_f1 = 0;     // of `used` on this data
  OperatingPoint at_used;  // the thresholds in use
  OperatingPoint at_f1;    // the F1-optimal threshold
  // Defect-type retrieval among the split's defective images (leave one out): the fraction of
  // each one's 5 most similar others with the same defect type, by defect embeddings (what
  // "closest known defects" uses) and by whole-image embeddings (mean pooling), for comparison.
  double defect_precision_at_5 = 0;
  double defect_precision_at_5_mean_pooling = 0;
  std::vector<ImageResult> images;
  RocCurve image_roc;
  RocCurve pixel_roc;  // thinned to at most ~2000 points
  PredictTimings timings;
  double metrics_seconds = 0;
  double seconds = 0;
};

struct EvaluateOptions {
  std::filesystem::path overlays_dir;  // empty: no overlay pictures
  std::filesystem::path roc_png;       // empty: no ROC plot
  int overlay_size = 320;              // pixels per panel
  // Chooses the thresholds to judge with once the scores are known (training sets them from the
  // report). Unset: the model's own, else the F1-optimal ones.
  std::function<Thresholds(const EvaluationReport&)> decide_thresholds;
};

// Predicts every test image of `category` (read with its masks) and scores the model.
EvaluationReport evaluate(const Model& model, const Category& category,
                          const EvaluateOptions& options = {});

// Judges the report's images again with `thresholds` (no prediction): `used`, verdicts,
// normalised scores, F1 and the operating point. For thresholds set after the evaluation.
void apply_thresholds(EvaluationReport& report, const Thresholds& thresholds);

// The fraction of good images flagged and of defective images flagged at `threshold`.
OperatingPoint operating_point(std::span<const ImageResult> images, float threshold);

}  // namespace pv
