// The JSON forms of PatchVec's results, shared by the CLI (--json) and the HTTP service so that
// both speak the same fields (docs/api.md). One function per concept; NaN (a value that does not
// apply, e.g. a threshold a model does not have) is null everywhere. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <patchvec/evaluation.h>
#include <patchvec/inspection.h>
#include <patchvec/model.h>
#include <patchvec/store.h>
#include <patchvec/training.h>

namespace pv::json {

using Json = nlohmann::ordered_json;

// `value`, or null when it is NaN.
Json number_or_null(double value);

// {"id", "path", "category", "label", "defect", "similarity"}; label is the stored image's
// verdict_name() ("normal" or "anomalous").
Json match(const Match& match);

// {"path", "category", "verdict", "reason", "score", "normalized", "threshold", "best_similarity",
//  "matches": [match], "report_id"}
Json inspection(const Inspection& inspection);

// {"id", "created", "path", "category", "score", "threshold", "best_similarity", "matches":
// [match], "status", "resolution", "defect", "note", "resolved_by", "resolved_at", "applied"}
Json report(const AnomalyReport& report);

// {"image", "pixel", "method", "false_alarm_rate" (null unless method is false_alarm_rate),
//  "good_images", "source"}: how a model decides.
Json thresholds(const Thresholds& thresholds);

// {"images", "max_relative_difference", "rank_correlation", "verdict_flips", "auroc",
//  "auroc_fp32"}: how a reduced-precision model agreed with fp32 when it was trained.
Json agreement(const PrecisionAgreement& agreement);
// {"images", "patches", "recall_at_1", "max_relative_error", "score_differences"}: how the
// shortlist search compared with the exact one when the model was trained.
Json shortlist_check(const ShortlistCheck& check);

// A loaded model as clients see it: {"category", "backbone", "pretrained", "bank_size",
// "train_images", "created", "revision", "precision", "agreement" (agreement(), or null),
// "shortlist_check" (shortlist_check(), or null), "thresholds" (thresholds(), or null)}.
Json model(const ModelInfo& info);

// {"images", "read_s", "backbone_s", "search_s", "map_s", "recomputed_in_float32",
//  "ms_per_image": {...}}
Json timings(const PredictTimings& timings);

// The two operating points of an evaluation: {"in_use": {"threshold", "false_alarm_rate",
// "detection_rate", "method"}, "f1_optimal": {...}}.
Json operating_points(const EvaluationReport& report);

// What fitting made (patchvec train --json's "fit"): {"backbone", "pretrained", "train_images",
// "train_patches", "bank_size", "coreset_method", "tiling" ({"size", "overlap", "scale"} or
// null), "projection_dim", "covering_radius", "spilled_to_disk", "peak_memory_bytes",
// "precision", "agreement", "timings": {"batchnorm_s", "embed_s", "project_s", "coreset_s",
// "calibrate_s", "fit_s"}}.
Json fit(const ModelInfo& info, const FitReport& fit);

// A trained category (one entry of patchvec train --json): {"category", "fit", "thresholds",
// "min_similarity" (when set), "image_auroc", "pixel_auroc", "pro", "operating_points" (with an
// evaluation), "notes"}.
Json training(const TrainResult& result);

// The whole evaluation of a category (patchvec eval --json): metrics, thresholds, operating
// points, every image's score and verdict, timings.
Json evaluation(const EvaluationReport& report);

}  // namespace pv::json
