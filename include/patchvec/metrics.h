// Evaluation metrics of anomaly detection, as anomalib and the MVTec AD benchmark define them.
// Labels: 0 = normal, 1 = anomalous. Higher scores mean "more anomalous".
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace pv {

// The ROC curve at every distinct score (predicting "anomalous" when score >= threshold), from
// (0, 0) to (1, 1); tied scores make one diagonal step, as in scikit-learn.
struct RocCurve {
  std::vector<double> fpr;
  std::vector<double> tpr;
  std::vector<float> thresholds;  // thresholds[i] gives point i + 1 (point 0 is "nothing flagged")
};

// Throws pv::Error unless both classes are present and the spans have the same length.
RocCurve roc_curve(std::span<const float> scores, std::span<const std::uint8_t> labels);

// Area under the ROC curve (trapezoids): ties count one half, as the Mann-Whitney U statistic.
double auroc(std::span<const float> scores, std::span<const std::uint8_t> labels);
double auroc(const RocCurve& curve);  // the same from a curve already computed

// Spearman's rank correlation of two equally long series (ties take their mean rank): 1 when
// they order the items alike. 1 for fewer than two items or a constant series on both sides.
double rank_correlation(std::span<const float> a, std::span<const float> b);

// The threshold that maximises F1 (anomalib's F1AdaptiveThreshold; the lowest such threshold
// when several tie).
struct F1Threshold {
  float threshold = 0;
  double f1 = 0;
  double precision = 0;
  double recall = 0;
};
F1Threshold f1_optimal_threshold(std::span<const float> scores,
                                 std::span<const std::uint8_t> labels);

// A threshold for a chosen false-alarm rate from scores of good images that the model did not
// learn from (split conformal prediction): with n such scores, the ceil((n + 1)(1 - R))-th
// smallest. A new good image from the same process then scores above it with probability at most
// R, if it is exchangeable with the n (same process, no drift). With n + 1 < 1/R no score is high
// enough: the tightest rate the scores support, 1/(n + 1), is used and `tightened` says so.
// Flagging is `score >= threshold`: the threshold is the next float above that score.
struct ConformalThreshold {
  float threshold = 0;
  double rate = 0;         // the rate it guarantees: R, or 1/(n + 1) when tightened
  bool tightened = false;  // R asked for more than n scores can show
  std::size_t n = 0;
};
// Throws pv::Error for no scores, a non-finite score, or R outside (0, 1).
ConformalThreshold conformal_threshold(std::span<const float> good_scores, double rate);

// The same for a lower bound: a value (a similarity) below which a new good image falls with
// probability at most R. `threshold` is the floor(R (n + 1))-th smallest value (the smallest
// when tightened); flagging is `value < threshold`.
ConformalThreshold conformal_lower_bound(std::span<const float> good_values, double rate);

// One image's anomaly map and ground-truth mask, width x height, row-major.
struct PixelMap {
  std::span<const float> scores;
  std::span<const std::uint8_t> mask;
  int width = 0;
  int height = 0;
};

// Per-region overlap (Bergmann et al., MVTec AD): every connected ground-truth region
// (8-connectivity) is one region; PRO(t) is the mean over all regions of the fraction of the
// region's pixels scoring >= t; FPR(t) is over all normal pixels of all images. Returns the area
// under PRO(FPR) for FPR in [0, fpr_limit], divided by fpr_limit. Throws pv::Error without any
// region or without normal pixels.
double pro_score(std::span<const PixelMap> images, double fpr_limit = 0.3);

}  // namespace pv
