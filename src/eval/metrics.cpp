#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <patchvec/error.h>
#include <patchvec/metrics.h>

namespace pv {
namespace {

void check(std::span<const float> scores, std::span<const std::uint8_t> labels) {
  if (scores.size() != labels.size()) {
    throw Error("metrics: " + std::to_string(scores.size()) + " scores for " +
                std::to_string(labels.size()) + " labels");
  }
  const auto positives = std::count_if(labels.begin(), labels.end(), [](auto l) { return l != 0; });
  if (positives == 0 || positives == static_cast<std::ptrdiff_t>(labels.size())) {
    throw Error(std::string("metrics: every sample is ") +
                (positives == 0 ? "normal" : "anomalous") +
                "; AUROC and thresholds need both classes");
  }
}

// Indices sorted by descending score.
std::vector<std::uint32_t> descending(std::span<const float> scores) {
  std::vector<std::uint32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return scores[a] > scores[b]; });
  return order;
}

// Trapezoid area under y(x) for x in [0, limit], x non-decreasing, interpolating at `limit`.
double area(const std::vector<double>& x, const std::vector<double>& y, double limit) {
  double total = 0;
  for (std::size_t i = 1; i < x.size(); ++i) {
    if (x[i - 1] >= limit) break;
    double x1 = x[i];
    double y1 = y[i];
    if (x1 > limit) {
      y1 = y[i - 1] + (y[i] - y[i - 1]) * (limit - x[i - 1]) / (x[i] - x[i - 1]);
      x1 = limit;
    }
    total += (x1 - x[i - 1]) * (y1 + y[i - 1]) / 2;
  }
  return total;
}

}  // namespace

RocCurve roc_curve(std::span<const float> scores, std::span<const std::uint8_t> labels) {
  check(scores, labels);
  const auto order = descending(scores);
  const auto positives = static_cast<double>(
      std::count_if(labels.begin(), labels.end(), [](auto l) { return l != 0; }));
  const double negatives = static_cast<double>(labels.size()) - positives;
  RocCurve curve{{0.0}, {0.0}, {}};
  double tp = 0;
  double fp = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    (labels[order[i]] != 0 ? tp : fp) += 1;
    const bool last_of_tie = i + 1 == order.size() || scores[order[i + 1]] != scores[order[i]];
    if (last_of_tie) {
      curve.fpr.push_back(fp / negatives);
      curve.tpr.push_back(tp / positives);
      curve.thresholds.push_back(scores[order[i]]);
    }
  }
  return curve;
}

double auroc(const RocCurve& curve) {
  return area(curve.fpr, curve.tpr, 1.0);
}

double auroc(std::span<const float> scores, std::span<const std::uint8_t> labels) {
  return auroc(roc_curve(scores, labels));
}

namespace {

std::vector<double> ranks(std::span<const float> values) {
  std::vector<std::size_t> order(values.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return values[a] < values[b]; });
  std::vector<double> rank(values.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    for (std::size_t k = i; k <= j; ++k) rank[order[k]] = (static_cast<double>(i + j) / 2) + 1;
    i = j + 1;
  }
  return rank;
}

}  // namespace

double rank_correlation(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) throw Error("rank correlation of series of different lengths");
  if (a.size() < 2) return 1;
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  const double mean = (n + 1) / 2;
  double cov = 0, va = 0, vb = 0;
  for (std::size_t i = 0; i < ra.size(); ++i) {
    cov += (ra[i] - mean) * (rb[i] - mean);
    va += (ra[i] - mean) * (ra[i] - mean);
    vb += (rb[i] - mean) * (rb[i] - mean);
  }
  if (va == 0 && vb == 0) return 1;
  if (va == 0 || vb == 0) return 0;
  return cov / std::sqrt(va * vb);
}

F1Threshold f1_optimal_threshold(std::span<const float> scores,
                                 std::span<const std::uint8_t> labels) {
  check(scores, labels);
  const auto order = descending(scores);
  const auto positives = static_cast<double>(
      std::count_if(labels.begin(), labels.end(), [](auto l) { return l != 0; }));
  F1Threshold best;
  double tp = 0;
  double fp = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    (labels[order[i]] != 0 ? tp : fp) += 1;
    if (i + 1 < order.size() && scores[order[i + 1]] == scores[order[i]]) continue;
    const double precision = tp / (tp + fp);
    const double recall = tp / positives;
    const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
    if (f1 >= best.f1) {  // descending thresholds: ">=" keeps the lowest of tied ones
      best = {scores[order[i]], f1, precision, recall};
    }
  }
  return best;
}

namespace {

std::vector<float> sorted_finite(std::span<const float> values, double rate, const char* what) {
  if (values.empty()) throw Error(std::string(what) + ": no values to set it from");
  if (!(rate > 0 && rate < 1)) {
    throw Error(std::string(what) + ": the false-alarm rate must be between 0 and 1, got " +
                std::to_string(rate));
  }
  std::vector<float> sorted(values.begin(), values.end());
  for (const float v : sorted) {
    if (!std::isfinite(v)) throw Error(std::string(what) + ": a value is not finite");
  }
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

}  // namespace

ConformalThreshold conformal_threshold(std::span<const float> good_scores, double rate) {
  const auto sorted = sorted_finite(good_scores, rate, "false-alarm threshold");
  const std::size_t n = sorted.size();
  ConformalThreshold out{.rate = rate, .n = n};
  // The k-th smallest, 1-based; computed in integers where the product is exact.
  auto k = static_cast<std::size_t>(std::ceil((n + 1) * (1 - rate) - 1e-9));
  if (k > n) {
    k = n;
    out.rate = 1.0 / static_cast<double>(n + 1);
    out.tightened = true;
  }
  k = std::max<std::size_t>(k, 1);
  out.threshold = std::nextafter(sorted[k - 1], std::numeric_limits<float>::infinity());
  return out;
}

ConformalThreshold conformal_lower_bound(std::span<const float> good_values, double rate) {
  const auto sorted = sorted_finite(good_values, rate, "similarity bound");
  const std::size_t n = sorted.size();
  ConformalThreshold out{.rate = rate, .n = n};
  auto k = static_cast<std::size_t>(std::floor(rate * (n + 1) + 1e-9));
  if (k < 1) {
    k = 1;
    out.rate = 1.0 / static_cast<double>(n + 1);
    out.tightened = true;
  }
  out.threshold = sorted[std::min(k, n) - 1];
  return out;
}

double pro_score(std::span<const PixelMap> images, double fpr_limit) {
  if (!(fpr_limit > 0 && fpr_limit <= 1)) throw Error("PRO: the FPR limit must be in (0, 1]");
  // Every pixel becomes (score, weight towards FPR or towards its region's overlap).
  std::vector<float> scores;
  std::vector<std::int32_t> region;  // -1 for normal pixels
  std::vector<double> region_size;
  for (const auto& image : images) {
    const auto pixels = static_cast<std::size_t>(image.width) * image.height;
    if (image.scores.size() != pixels || image.mask.size() != pixels) {
      throw Error("PRO: map and mask sizes differ from " + std::to_string(image.width) + " x " +
                  std::to_string(image.height));
    }
    cv::Mat mask(image.height, image.width, CV_8UC1, const_cast<std::uint8_t*>(image.mask.data()));
    cv::Mat labels;
    const int count = cv::connectedComponents(mask != 0, labels, 8, CV_32S);
    const auto offset = static_cast<std::int32_t>(region_size.size());
    region_size.resize(region_size.size() + count - 1, 0.0);
    for (int y = 0; y < image.height; ++y) {
      const auto* row = labels.ptr<std::int32_t>(y);
      for (int x = 0; x < image.width; ++x) {
        const std::int32_t id = row[x] == 0 ? -1 : offset + row[x] - 1;
        if (id >= 0) region_size[id] += 1;
        region.push_back(id);
      }
    }
    scores.insert(scores.end(), image.scores.begin(), image.scores.end());
  }
  const double regions = static_cast<double>(region_size.size());
  const auto normal = static_cast<double>(std::count(region.begin(), region.end(), -1));
  if (regions == 0) throw Error("PRO: no anomalous region in any mask");
  if (normal == 0) throw Error("PRO: no normal pixel in any mask");

  const auto order = descending(scores);
  std::vector<double> fpr{0.0};
  std::vector<double> pro{0.0};
  double false_positive = 0;
  double overlap = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const std::int32_t id = region[order[i]];
    if (id < 0) {
      false_positive += 1 / normal;
    } else {
      overlap += 1 / (region_size[id] * regions);
    }
    if (i + 1 < order.size() && scores[order[i + 1]] == scores[order[i]]) continue;
    fpr.push_back(false_positive);
    pro.push_back(overlap);
    if (false_positive > fpr_limit) break;
  }
  return area(fpr, pro, fpr_limit) / fpr_limit;
}

}  // namespace pv
