#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include <patchvec/error.h>
#include <patchvec/log.h>
#include <patchvec/metrics.h>
#include <patchvec/system.h>
#include <patchvec/training.h>

namespace pv {

std::int64_t default_memory_budget() {
  return physical_memory_bytes() / 2;
}
namespace {

constexpr int kDefaultFolds = 5;
constexpr double kMaxAurocChange = 0.005;  // the agreement check's bound on image AUROC

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

// What the good images scored: held out of the bank (training images, cross-fitted) or never
// learnt from (the test split's good images).
struct GoodScores {
  std::vector<float> images;
  std::vector<float> map_maxima;
};

// `report`: the labelled test split's evaluation, whose good images count too.
Thresholds decide(const ThresholdPolicy& policy, const std::string& category, GoodScores good,
                  const EvaluationReport* report, std::vector<std::string>& notes) {
  if (report != nullptr) {
    for (const ImageResult& r : report->images) {
      if (r.label) continue;
      good.images.push_back(r.score);
      good.map_maxima.push_back(r.map_max);
    }
  }
  Thresholds t;
  // Normalisation (anomalib's min-max) over every score seen: good ones, and the test split's.
  std::vector<float> all = good.images;
  if (report != nullptr) {
    for (const ImageResult& r : report->images) all.push_back(r.score);
  }
  if (!all.empty()) {
    const auto [lo, hi] = std::minmax_element(all.begin(), all.end());
    t.image_min = *lo;
    t.image_max = *hi;
  }
  if (report != nullptr) {
    t.pixel_min = report->computed.pixel_min;
    t.pixel_max = report->computed.pixel_max;
  } else if (!good.map_maxima.empty()) {
    t.pixel_min = 0;
    t.pixel_max = *std::max_element(good.map_maxima.begin(), good.map_maxima.end());
  }
  switch (policy.method) {
    case ThresholdMethod::kF1: {
      const bool labelled = report != nullptr;
      if (!labelled) {
        throw Error("category " + category +
                    ": --threshold f1 needs a labelled test split with defects; with good images "
                    "only use --threshold far:R (the default)");
      }
      return report->computed;
    }
    case ThresholdMethod::kFixed:
      t.image = t.pixel = policy.value;
      t.method = ThresholdMethod::kFixed;
      t.source = "fixed at " + format("%g", policy.value);
      return t;
    case ThresholdMethod::kFalseAlarmRate:
      break;
  }
  if (good.images.empty()) {
    throw Error("category " + category +
                ": no held-out good image to set a false-alarm rate on (train on 2 or more)");
  }
  const ConformalThreshold image = conformal_threshold(good.images, policy.false_alarm_rate);
  const ConformalThreshold pixel = conformal_threshold(good.map_maxima, policy.false_alarm_rate);
  t.image = image.threshold;
  t.pixel = pixel.threshold;
  t.method = ThresholdMethod::kFalseAlarmRate;
  t.false_alarm_rate = image.rate;
  t.good_images = static_cast<std::int64_t>(image.n);
  t.source = "false-alarm rate " + format("%.3g", image.rate) + " on " + std::to_string(image.n) +
             " good images";
  if (image.tightened) {
    notes.push_back(
        category + ": " + std::to_string(image.n) +
        " good images cannot show a false-alarm rate of " + format("%g", policy.false_alarm_rate) +
        "; the tightest they support, " + format("%.3g", image.rate) + " (1/(n+1)), is used. " +
        std::to_string(static_cast<long long>(std::ceil(1 / policy.false_alarm_rate) - 1)) +
        " good images would show it.");
  }
  return t;
}

}  // namespace

ThresholdPolicy parse_threshold_policy(const std::string& text, const std::string& option) {
  const auto number = [&](std::string_view digits, double& out) {
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return error == std::errc() && end == digits.data() + digits.size() && std::isfinite(out);
  };
  ThresholdPolicy policy;
  double value = 0;
  if (text == "f1") {
    policy.method = ThresholdMethod::kF1;
  } else if (text.starts_with("far:")) {
    if (!number(std::string_view(text).substr(4), value) || !(value > 0 && value < 1)) {
      throw Error(option + " " + text +
                  ": the false-alarm rate must be between 0 and 1 (far:0.01)");
    }
    policy.false_alarm_rate = value;
  } else if (number(text, value)) {
    policy.method = ThresholdMethod::kFixed;
    policy.value = static_cast<float>(value);
  } else {
    throw Error(option + " " + text +
                ": expected far:R (a false-alarm rate, e.g. far:0.01), f1, "
                "or a number");
  }
  return policy;
}

std::string describe(const ThresholdPolicy& policy) {
  switch (policy.method) {
    case ThresholdMethod::kF1:
      return "f1";
    case ThresholdMethod::kFixed:
      return format("%g", policy.value);
    case ThresholdMethod::kFalseAlarmRate:
      break;
  }
  return "far:" + format("%g", policy.false_alarm_rate);
}

std::vector<float> good_similarities(const std::vector<std::vector<float>>& train,
                                     std::span<const std::size_t> held_out,
                                     const std::vector<std::vector<float>>& others) {
  std::vector<float> out;
  for (const std::size_t i : held_out) {
    if (i >= train.size() || train.size() < 2) continue;
    double best = -1;
    for (std::size_t j = 0; j < train.size(); ++j) {
      if (j != i) best = std::max(best, cosine_similarity(train[i], train[j]));
    }
    out.push_back(static_cast<float>(best));
  }
  for (const auto& other : others) {
    double best = -1;
    for (const auto& t : train) best = std::max(best, cosine_similarity(other, t));
    if (!train.empty()) out.push_back(static_cast<float>(best));
  }
  return out;
}

namespace {

// A model's thresholds, set on its good scores, and its evaluation on the labelled test split.
struct Calibration {
  Thresholds thresholds;
  std::optional<EvaluationReport> evaluation;
  std::vector<std::vector<float>> test_good;  // embeddings of good test images
};

Calibration calibrate(const Model& model, const Category& category, const TrainOptions& options,
                      GoodScores good, std::vector<std::string>& notes) {
  const ThresholdPolicy& policy = options.thresholds;
  Calibration out;
  const bool has_defects = std::any_of(category.test.begin(), category.test.end(),
                                       [](const Sample& s) { return s.anomalous(); });
  const bool has_good = std::any_of(category.test.begin(), category.test.end(),
                                    [](const Sample& s) { return !s.anomalous(); });
  std::optional<Thresholds> thresholds;
  if (options.evaluate && has_defects && has_good) {
    EvaluateOptions evaluation = options.evaluation;
    evaluation.decide_thresholds = [&](const EvaluationReport& report) {
      thresholds = decide(policy, category.name, good, &report, notes);
      return *thresholds;
    };
    out.evaluation = evaluate(model, category, evaluation);
    out.evaluation->used_model_thresholds = true;  // they are the model's now
    for (const ImageResult& r : out.evaluation->images) {
      if (!r.label) out.test_good.push_back(r.embedding);
    }
  } else {
    // Good test images without defects to judge against: more good images to calibrate on.
    std::vector<std::filesystem::path> paths;
    for (const Sample& s : category.test) {
      if (!s.anomalous()) paths.push_back(s.image);
    }
    const std::vector<Prediction> predictions =
        paths.empty() ? std::vector<Prediction>() : model.predict(paths, "calibrate");
    for (const Prediction& p : predictions) {
      good.images.push_back(p.score);
      good.map_maxima.push_back(*std::max_element(p.map.values.begin(), p.map.values.end()));
      out.test_good.push_back(p.embedding);
    }
    thresholds = decide(policy, category.name, good, nullptr, notes);
  }
  out.thresholds = *thresholds;
  return out;
}

// The agreement check (PrecisionAgreement): the model's held-out scores against their float32
// counterparts, each judged by the thresholds set in its own precision.
PrecisionAgreement agree(const FitReport& fit, const Calibration& own,
                         const Calibration& reference) {
  PrecisionAgreement a;
  const auto& scores = fit.held_out_scores;
  const auto& fp32 = fit.reference_scores;
  a.images = static_cast<std::int64_t>(std::min(scores.size(), fp32.size()));
  for (std::int64_t i = 0; i < a.images; ++i) {
    const auto k = static_cast<std::size_t>(i);
    a.max_relative_difference = std::max(
        a.max_relative_difference, std::abs(static_cast<double>(scores[k]) - fp32[k]) /
                                       std::max(std::abs(static_cast<double>(fp32[k])), 1e-12));
    const bool anomalous = scores[k] >= own.thresholds.image;
    const bool anomalous_fp32 = fp32[k] >= reference.thresholds.image;
    if (anomalous != anomalous_fp32) ++a.verdict_flips;
  }
  a.rank_correlation = rank_correlation(std::span(scores).first(static_cast<std::size_t>(a.images)),
                                        std::span(fp32).first(static_cast<std::size_t>(a.images)));
  if (own.evaluation && reference.evaluation) {
    a.auroc = own.evaluation->image_auroc;
    a.auroc_fp32 = reference.evaluation->image_auroc;
  }
  return a;
}

// Why `a` refuses a model, in words; empty when it passes.
std::string disagreement(const PrecisionAgreement& a) {
  std::string why;
  if (a.verdict_flips > 0) {
    why = std::to_string(a.verdict_flips) + " of " + std::to_string(a.images) +
          " calibration verdicts differ from fp32's";
  }
  if (std::isfinite(a.auroc) && std::abs(a.auroc - a.auroc_fp32) > kMaxAurocChange) {
    why += (why.empty() ? "" : ", and ") + format("image AUROC %.4f", a.auroc) +
           format(" against fp32's %.4f", a.auroc_fp32) + " (more than 0.005 apart)";
  }
  return why;
}

}  // namespace

std::string describe(const PrecisionAgreement& a) {
  std::string text = format("max score difference %.2f%%", 100 * a.max_relative_difference) +
                     format(", rank correlation %.4f", a.rank_correlation) + ", " +
                     std::to_string(a.verdict_flips) + " of " + std::to_string(a.images) +
                     " calibration verdicts flipped";
  if (std::isfinite(a.auroc)) {
    text += format(", image AUROC %.4f", a.auroc) + format(" (fp32 %.4f)", a.auroc_fp32);
  }
  return text;
}

TrainResult train_category(const Category& category, const TrainOptions& options) {
  const ThresholdPolicy& policy = options.thresholds;
  if (policy.method == ThresholdMethod::kFalseAlarmRate &&
      !(policy.false_alarm_rate > 0 && policy.false_alarm_rate < 1)) {
    throw Error("the false-alarm rate must be between 0 and 1");
  }
  PatchCoreOptions model_options = options.model;
  if (model_options.calibration_folds == 0 && policy.method != ThresholdMethod::kF1) {
    model_options.calibration_folds = kDefaultFolds;
  }
  std::vector<std::filesystem::path> train;
  for (const Sample& s : category.train) train.push_back(s.image);
  FitReport fit;
  std::vector<std::vector<float>> train_embeddings;
  Model model = Model::fit(train, category.name, model_options, &fit, &train_embeddings);
  TrainResult result{.model = std::move(model),
                     .fit = std::move(fit),
                     .train_embeddings = std::move(train_embeddings)};

  Calibration own =
      calibrate(result.model, category, options,
                {result.fit.held_out_scores, result.fit.held_out_map_maxima}, result.notes);
  const Precision precision = result.model.info().backbone.precision;
  if (precision != Precision::kFloat32) {
    // The same calibration of the float32 model (the fit kept its bank), for the check.
    Model reference = result.model.with_precision(Precision::kFloat32);
    std::vector<std::string> reference_notes;  // said once already, by the model's calibration
    TrainOptions quiet = options;              // its pictures would overwrite the model's
    quiet.evaluation.overlays_dir.clear();
    quiet.evaluation.roc_png.clear();
    Calibration fp32 =
        calibrate(reference, category, quiet,
                  {result.fit.reference_scores, result.fit.reference_map_maxima}, reference_notes);
    const PrecisionAgreement agreement = agree(result.fit, own, fp32);
    const std::string why = disagreement(agreement);
    const std::string name = precision_name(precision);
    if (!why.empty() && !options.precision_fallback) {
      throw Error("category " + category.name + ": " + name + " refused: " + why +
                  "; train with --precision fp32, or --precision auto to fall back to it");
    }
    if (!why.empty()) {
      result.notes.push_back(category.name + ": " + name + " would change decisions (" + why +
                             "): trained in fp32 instead");
      result.model = std::move(reference);
      own = std::move(fp32);
      result.fit.held_out_scores = result.fit.reference_scores;
      result.fit.held_out_map_maxima = result.fit.reference_map_maxima;
    } else {
      result.model.set_agreement(agreement);
    }
  }
  result.evaluation = std::move(own.evaluation);
  const std::vector<std::vector<float>>& test_good = own.test_good;
  result.model.set_thresholds(own.thresholds);

  // The similarity rule at the same rate (or 0.01 with another policy): on the training images'
  // leave-one-out similarities and the test split's good images against the training images.
  const std::vector<float> similarities =
      good_similarities(result.train_embeddings, result.fit.held_out_images, test_good);
  if (!similarities.empty()) {
    const double rate =
        policy.method == ThresholdMethod::kFalseAlarmRate ? policy.false_alarm_rate : 0.01;
    const ConformalThreshold bound = conformal_lower_bound(similarities, rate);
    result.model.set_similarity_rule({.min_similarity = bound.threshold,
                                      .false_alarm_rate = bound.rate,
                                      .good_images = static_cast<std::int64_t>(bound.n)});
  }
  for (const std::string& note : result.notes) log::warn(note);
  return result;
}

}  // namespace pv
