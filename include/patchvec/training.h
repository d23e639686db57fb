// Training a category the way a production line needs it: fit PatchCore on the good images, set
// the decision thresholds, calibrate the similarity rule, and evaluate on the labelled test split
// when there is one. The CLI's train and demo commands are this call and printing.
//
// Thresholds come, by default, from good images only, at a stated false-alarm rate R: training
// images are scored by banks fitted without them (cross-fitting, PatchCoreOptions::
// calibration_folds: with pretrained weights all of them, or as many folds as hold out
// calibration_images (200); a fifth with a random backbone, whose BatchNorm statistics must not
// have seen them), the test split's good images (if any) by the model, and the image threshold is
// the conformal quantile of those scores (metrics.h: conformal_threshold). With the fast coreset
// the model's own bank is continued from the first fold's (the held-out images' patches taken in,
// the selection carried on): one selection's work for both, not one each. A new good image from
// the same process is then flagged with probability at most R. That holds while the process stays
// the same: a new lot of material, a moved camera or other lighting is a new process, and the model
// should be updated (patchvec update) or retrained on it.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include <patchvec/dataset.h>
#include <patchvec/evaluation.h>
#include <patchvec/model.h>

namespace pv {

// How thresholds are set: "far:R" (good images, false-alarm rate R), "f1" (F1-optimal on the
// labelled test split: anomalib's default, fitted on the very images it is judged on) or a number
// (image and pixel thresholds both).
struct ThresholdPolicy {
  ThresholdMethod method = ThresholdMethod::kFalseAlarmRate;
  double false_alarm_rate = 0.01;  // kFalseAlarmRate; the similarity rule's rate in any case
  float value = 0;                 // kFixed
};

// "far:0.01", "f1" or a number. Throws pv::Error naming `option` otherwise.
ThresholdPolicy parse_threshold_policy(const std::string& text,
                                       const std::string& option = "--threshold");
std::string describe(const ThresholdPolicy& policy);  // "far:0.01", "f1", "12.5"
// "max score difference 0.41%, rank correlation 0.9991, 0 of 80 calibration verdicts flipped[,
// image AUROC 0.9123 (fp32 0.9130)]"
std::string describe(const PrecisionAgreement& agreement);

// The memory budget for training patches (PatchCoreOptions::max_memory_bytes) that `patchvec
// train` and `patchvec demo` use unless told otherwise: half of this machine's physical memory.
std::int64_t default_memory_budget();

struct TrainOptions {
  // calibration_folds 0: 5 for a false-alarm-rate policy. A reduced `precision` is checked
  // against fp32 (PrecisionAgreement): refused when a calibration verdict flips or the labelled
  // test split's image AUROC moves by more than 0.005.
  PatchCoreOptions model;
  // --precision auto: a reduced precision the check refuses falls back to fp32 (a note says so)
  // instead of failing the training.
  bool precision_fallback = false;
  ThresholdPolicy thresholds;
  bool evaluate = true;        // on the labelled test split, when the category has one
  EvaluateOptions evaluation;  // pictures; its decide_thresholds is set here
};

struct TrainResult {
  Model model;
  FitReport fit;
  std::optional<EvaluationReport> evaluation;        // judged with the thresholds set here
  std::vector<std::vector<float>> train_embeddings;  // per training image, for the store
  std::vector<std::string> notes;  // what the user should read: a tightened rate, ...
};

// Throws pv::Error for unreadable images, impossible options (f1 without a labelled test split
// with defects, a false-alarm rate outside (0, 1)) or a reduced precision the agreement check
// refuses (without precision_fallback).
TrainResult train_category(const Category& category, const TrainOptions& options);

// The similarities of good images the similarity rule is set on: for each training image in
// `held_out` its best cosine similarity to the other training images, and for each of `others`
// (good images the model never saw) its best similarity to the training images.
std::vector<float> good_similarities(const std::vector<std::vector<float>>& train,
                                     std::span<const std::size_t> held_out,
                                     const std::vector<std::vector<float>>& others = {});

}  // namespace pv
