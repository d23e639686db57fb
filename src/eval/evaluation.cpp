#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <opencv2/imgproc.hpp>

#include <patchvec/error.h>
#include <patchvec/evaluation.h>
#include <patchvec/interrupt.h>
#include <patchvec/stopwatch.h>

#include "eval/plots.h"
#include "image/render.h"
#include "util/progress.h"

namespace pv {
namespace {

RocCurve thinned(RocCurve curve, std::size_t points) {
  if (curve.fpr.size() <= points) return curve;
  RocCurve out;
  const double step = static_cast<double>(curve.fpr.size() - 1) / static_cast<double>(points - 1);
  for (std::size_t i = 0; i < points; ++i) {
    const auto at = static_cast<std::size_t>(std::lround(i * step));
    out.fpr.push_back(curve.fpr[at]);
    out.tpr.push_back(curve.tpr[at]);
    if (at > 0) out.thresholds.push_back(curve.thresholds[at - 1]);
  }
  return out;
}

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

void write_overlays(const Model& model, const Category& category,
                    const std::vector<Prediction>& predictions, const std::vector<cv::Mat>& masks,
                    const Thresholds& thresholds, const EvaluateOptions& options) {
  std::filesystem::create_directories(options.overlays_dir);
  const ModelInfo& info = model.info();
  ProgressBar progress("overlays", category.test.size());
  for (std::size_t i = 0; i < category.test.size(); ++i) {
    const Sample& sample = category.test[i];
    const Prediction& p = predictions[i];
    const cv::Mat view =
        render::model_view(load_image(sample.image), info.options.embedder.image_size,
                           info.options.embedder.crop_size, options.overlay_size);
    std::vector<float> normalized(p.map.values.size());
    std::transform(p.map.values.begin(), p.map.values.end(), normalized.begin(), [&](float v) {
      return normalize_score(v, thresholds.pixel, thresholds.pixel_min, thresholds.pixel_max);
    });
    cv::Mat mask;
    if (!masks[i].empty()) {
      cv::resize(masks[i], mask, view.size(), 0, 0, cv::INTER_NEAREST);
    }
    const bool anomalous = p.score >= thresholds.image;
    const float shown =
        normalize_score(p.score, thresholds.image, thresholds.image_min, thresholds.image_max);
    const std::string caption = sample.relative_path + "   score " + format("%.3f", p.score) +
                                " (normalised " + format("%.2f", shown) + ")   " +
                                (anomalous ? "ANOMALOUS" : "normal") +
                                (sample.anomalous() == anomalous ? "" : "  [wrong]");
    const cv::Mat picture = render::panels(
        {view, render::mask_overlay(view, mask),
         render::heatmap_overlay(view, normalized, p.map.width, p.map.height)},
        {"image", sample.anomalous() ? "ground truth: " + sample.defect : "ground truth: good",
         "anomaly map"},
        caption, anomalous ? cv::Scalar(90, 90, 255) : cv::Scalar(120, 220, 120));
    std::string name = sample.relative_path;
    std::replace(name.begin(), name.end(), '/', '_');
    render::write_png(options.overlays_dir / (std::filesystem::path(name).stem().string() + ".png"),
                      picture);
    progress.advance();
    check_interrupt();
  }
}

}  // namespace

OperatingPoint operating_point(std::span<const ImageResult> images, float threshold) {
  double good = 0, good_flagged = 0, bad = 0, bad_flagged = 0;
  for (const ImageResult& r : images) {
    const bool flagged = r.score >= threshold;
    (r.label ? bad : good) += 1;
    (r.label ? bad_flagged : good_flagged) += flagged;
  }
  return {threshold, good > 0 ? good_flagged / good : 0.0, bad > 0 ? bad_flagged / bad : 0.0};
}

void apply_thresholds(EvaluationReport& report, const Thresholds& thresholds) {
  report.used = thresholds;
  double tp = 0, fp = 0, fn = 0;
  for (ImageResult& r : report.images) {
    const bool anomalous = r.score >= thresholds.image;
    r.verdict = verdict_of(anomalous);
    r.normalized =
        normalize_score(r.score, thresholds.image, thresholds.image_min, thresholds.image_max);
    tp += anomalous && r.label;
    fp += anomalous && !r.label;
    fn += !anomalous && r.label;
  }
  report.image_f1 = tp > 0 ? 2 * tp / (2 * tp + fp + fn) : 0;
  report.at_used = operating_point(report.images, thresholds.image);
}

namespace {

// Leave-one-out precision@5 of defect types among the defective images, by `embedding_of`.
template <typename Embedding>
double defect_precision_at_5(std::span<const ImageResult> images, Embedding embedding_of) {
  double hits = 0, shown = 0;
  for (std::size_t i = 0; i < images.size(); ++i) {
    if (!images[i].label) continue;
    std::vector<std::pair<double, std::size_t>> ranked;
    for (std::size_t j = 0; j < images.size(); ++j) {
      if (j != i && images[j].label)
        ranked.emplace_back(cosine_similarity(embedding_of(images[i]), embedding_of(images[j])), j);
    }
    const std::size_t k = std::min<std::size_t>(5, ranked.size());
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k), ranked.end(),
                      [](const auto& a, const auto& b) {
                        return a.first != b.first ? a.first > b.first : a.second < b.second;
                      });
    for (std::size_t r = 0; r < k; ++r) hits += images[ranked[r].second].defect == images[i].defect;
    shown += static_cast<double>(k);
  }
  return shown > 0 ? hits / shown : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

EvaluationReport evaluate(const Model& model, const Category& category,
                          const EvaluateOptions& options) {
  if (category.test.empty()) {
    throw Error("category " + category.name + " has no test images to evaluate on");
  }
  Stopwatch clock;
  EvaluationReport report;
  report.category = category.name;
  std::vector<std::filesystem::path> paths;
  for (const auto& sample : category.test) paths.push_back(sample.image);
  const std::vector<Prediction> predictions = model.predict(paths, "evaluate", &report.timings);
  Stopwatch metrics_clock;

  const ModelInfo& info = model.info();
  std::vector<float> scores;
  std::vector<std::uint8_t> labels;
  std::vector<float> pixels;
  std::vector<std::uint8_t> pixel_labels;
  std::vector<cv::Mat> masks(category.test.size());
  bool any_mask = false;
  for (std::size_t i = 0; i < category.test.size(); ++i) {
    const Sample& sample = category.test[i];
    const Prediction& p = predictions[i];
    scores.push_back(p.score);
    labels.push_back(sample.anomalous() ? 1 : 0);
    pixels.insert(pixels.end(), p.map.values.begin(), p.map.values.end());
    if (!sample.mask.empty()) {
      // The mask where the map lies: the crop (a square), or a tiled model's whole scaled image.
      const cv::Mat mask = render::load_mask(sample.mask);
      masks[i] = info.options.embedder.tiling.enabled()
                     ? render::resized_mask(mask, p.map.width, p.map.height)
                     : render::model_view_mask(mask, info.options.embedder.image_size,
                                               info.options.embedder.crop_size, p.map.width);
      any_mask = true;
      for (int y = 0; y < p.map.height; ++y) {
        const auto* row = masks[i].ptr<std::uint8_t>(y);
        for (int x = 0; x < p.map.width; ++x) pixel_labels.push_back(row[x] > 0 ? 1 : 0);
      }
    } else {
      pixel_labels.insert(pixel_labels.end(), p.map.values.size(), 0);
    }
  }
  if (std::count(labels.begin(), labels.end(), 1) == 0 ||
      std::count(labels.begin(), labels.end(), 0) == 0) {
    throw Error("category " + category.name +
                ": the test split needs both good and defective images for AUROC and thresholds");
  }

  report.image_roc = roc_curve(scores, labels);
  report.image_auroc = auroc(report.image_roc);
  const F1Threshold image_threshold = f1_optimal_threshold(scores, labels);
  const auto [image_min, image_max] = std::minmax_element(scores.begin(), scores.end());
  const auto [pixel_min, pixel_max] = std::minmax_element(pixels.begin(), pixels.end());
  report.computed = {.image = image_threshold.threshold,
                     .pixel = image_threshold.threshold,  // replaced below when masks exist
                     .image_min = *image_min,
                     .image_max = *image_max,
                     .pixel_min = *pixel_min,
                     .pixel_max = *pixel_max,
                     .source = "f1 on the labelled test split of " + category.name + " (" +
                               std::to_string(category.test.size()) + " images)",
                     .method = ThresholdMethod::kF1};
  report.pixel_auroc = std::numeric_limits<double>::quiet_NaN();
  report.pro = std::numeric_limits<double>::quiet_NaN();
  if (any_mask) {
    const RocCurve pixel_roc = roc_curve(pixels, pixel_labels);
    report.pixel_auroc = auroc(pixel_roc);
    report.pixel_roc = thinned(pixel_roc, 2000);
    report.computed.pixel = f1_optimal_threshold(pixels, pixel_labels).threshold;
    std::vector<PixelMap> maps;
    std::size_t offset = 0;
    for (const Prediction& p : predictions) {
      const std::size_t size = p.map.values.size();
      maps.push_back({std::span(pixels).subspan(offset, size),
                      std::span(pixel_labels).subspan(offset, size), p.map.width, p.map.height});
      offset += size;
    }
    report.pro = pro_score(maps);
  }

  for (std::size_t i = 0; i < category.test.size(); ++i) {
    const Sample& sample = category.test[i];
    const Prediction& p = predictions[i];
    report.images.push_back({.relative_path = sample.relative_path,
                             .defect = sample.defect,
                             .label = sample.anomalous() ? 1 : 0,
                             .score = p.score,
                             .map_max = *std::max_element(p.map.values.begin(), p.map.values.end()),
                             .embedding = p.embedding,
                             .defect_embedding = p.defect_embedding});
  }
  report.used_model_thresholds = info.thresholds.has_value() && !options.decide_thresholds;
  apply_thresholds(report, options.decide_thresholds ? options.decide_thresholds(report)
                           : info.thresholds         ? *info.thresholds
                                                     : report.computed);
  report.at_f1 = operating_point(report.images, report.computed.image);
  report.defect_precision_at_5 = defect_precision_at_5(
      report.images, [](const ImageResult& r) -> const auto& { return r.defect_embedding; });
  report.defect_precision_at_5_mean_pooling = defect_precision_at_5(
      report.images, [](const ImageResult& r) -> const auto& { return r.embedding; });
  report.metrics_seconds = metrics_clock.lap();

  if (!options.overlays_dir.empty()) {
    write_overlays(model, category, predictions, masks, report.used, options);
  }
  if (!options.roc_png.empty()) {
    std::vector<plots::Curve> curves = {
        {&report.image_roc, "image  AUROC " + format("%.3f", report.image_auroc)}};
    if (any_mask)
      curves.push_back({&report.pixel_roc, "pixel  AUROC " + format("%.3f", report.pixel_auroc)});
    plots::write_roc_png(options.roc_png, category.name + ": ROC", curves);
  }
  report.seconds = clock.total();
  return report;
}

}  // namespace pv
