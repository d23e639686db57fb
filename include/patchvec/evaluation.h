// Evaluating a model on a category's labelled test split: AUROC, PRO, F1-optimal thresholds,
// per-image results, and pictures (overlays, ROC curves).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <patchvec/dataset.h>
#include <patchvec/metrics.h>
#include <patchvec/model.h>

namespace pv {

struct ImageResult {
  std::string relative_path;     // under the category folder, e.g. "test/crack/003.png"
  std::string defect;            // folder name, "good" for normal images
  int label = 0;                 // 1 = anomalous
  float score = 0;               // raw
  float normalized = 0;          // with the thresholds in use (see EvaluationReport)
  bool anomalous = false;        // verdict with those thresholds
  std::vector<float> embedding;  // for similarity search (image_embedding())
};

struct EvaluationReport {
  std::string category;
  double image_auroc = 0;
  double pixel_auroc = 0;  // NaN when no test image has a mask
  double pro = 0;          // NaN when no test image has a mask
  Thresholds computed;     // F1-optimal on this data
  Thresholds used;         // the model's own when it has them, else `computed`
  bool used_model_thresholds = false;
  double image_f1 = 0;  // of `used` on this data
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
};

// Predicts every test image of `category` (read with its masks) and scores the model.
EvaluationReport evaluate(const Model& model, const Category& category,
                          const EvaluateOptions& options = {});

// The thresholds (F1-optimal) and normalisation statistics a report found, for
// Model::set_thresholds.
Thresholds thresholds_from(const EvaluationReport& report);

}  // namespace pv
