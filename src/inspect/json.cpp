#include <cmath>

#include <patchvec/json.h>

namespace pv::json {
namespace {

Json matches(const std::vector<Match>& list) {
  Json out = Json::array();
  for (const Match& m : list) out.push_back(match(m));
  return out;
}

Json text_or_null(const std::string& text) {
  return text.empty() ? Json() : Json(text);
}

}  // namespace

Json number_or_null(double value) {
  return std::isnan(value) ? Json() : Json(value);
}

Json match(const Match& m) {
  return {{"id", m.image.id},
          {"path", m.image.path},
          {"category", m.image.category},
          {"label", verdict_name(verdict_of(m.image.anomalous))},
          {"defect", m.image.defect},
          {"similarity", m.similarity}};
}

Json inspection(const Inspection& r) {
  return {{"path", r.path},
          {"category", r.category},
          {"verdict", verdict_name(r.verdict)},
          {"reason", r.reason},
          {"score", r.score},
          {"normalized", number_or_null(r.normalized)},
          {"threshold", number_or_null(r.threshold)},
          {"best_similarity", r.best_similarity},
          {"matches", matches(r.matches)},
          {"report_id", r.report_id ? Json(*r.report_id) : nullptr},
          {"report_pending", r.report_pending},
          {"note", text_or_null(r.note)}};
}

Json report(const AnomalyReport& r) {
  return {{"id", r.id},
          {"created", r.created},
          {"path", r.path},
          {"category", r.category},
          {"score", r.score},
          {"threshold", number_or_null(r.threshold)},
          {"best_similarity", r.best_similarity},
          {"matches", matches(r.matches)},
          {"status", report_status_name(r.status)},
          {"resolution", r.resolution ? Json(resolution_name(*r.resolution)) : Json()},
          {"defect", text_or_null(r.defect)},
          {"note", r.note},
          {"resolved_by", text_or_null(r.resolved_by)},
          {"resolved_at", text_or_null(r.resolved_at)},
          {"applied", r.applied}};
}

Json thresholds(const Thresholds& t) {
  return {{"image", t.image},
          {"pixel", t.pixel},
          {"method", threshold_method_name(t.method)},
          {"false_alarm_rate",
           t.method == ThresholdMethod::kFalseAlarmRate ? Json(t.false_alarm_rate) : Json()},
          {"good_images", t.good_images},
          {"source", t.source}};
}

Json agreement(const PrecisionAgreement& a) {
  return {{"images", a.images},
          {"max_relative_difference", a.max_relative_difference},
          {"rank_correlation", a.rank_correlation},
          {"verdict_flips", a.verdict_flips},
          {"auroc", number_or_null(a.auroc)},
          {"auroc_fp32", number_or_null(a.auroc_fp32)}};
}

Json shortlist_check(const ShortlistCheck& c) {
  return {{"images", c.images},
          {"patches", c.patches},
          {"recall_at_1", c.recall_at_1},
          {"max_relative_error", c.max_relative_error},
          {"score_differences", c.score_differences}};
}

Json model(const ModelInfo& info) {
  return {
      {"category", info.category},
      {"backbone", info.backbone.backbone},
      {"pretrained", info.pretrained},
      {"bank_size", info.bank_size},
      {"train_images", info.train_images},
      {"created", info.created},
      {"revision", info.revision},
      {"precision", precision_name(info.backbone.precision)},
      {"agreement", info.agreement ? agreement(*info.agreement) : Json()},
      {"shortlist_check", info.shortlist_check ? shortlist_check(*info.shortlist_check) : Json()},
      {"thresholds", info.thresholds ? thresholds(*info.thresholds) : Json()}};
}

Json timings(const PredictTimings& t) {
  const double per_image = t.images > 0 ? 1000.0 / static_cast<double>(t.images) : 0;
  return {{"images", t.images},
          {"read_s", t.read_seconds},
          {"backbone_s", t.backbone_seconds},
          {"search_s", t.search_seconds},
          {"map_s", t.map_seconds},
          {"recomputed_in_float32", t.recomputed_in_float32},
          {"remeasured_patches", t.remeasured_patches},
          {"ms_per_image",
           {{"read", t.read_seconds * per_image},
            {"backbone", t.backbone_seconds * per_image},
            {"search", t.search_seconds * per_image},
            {"map", t.map_seconds * per_image}}}};
}

Json operating_points(const EvaluationReport& report) {
  const auto point = [](const OperatingPoint& p) {
    return Json{{"threshold", p.threshold},
                {"false_alarm_rate", p.false_alarm_rate},
                {"detection_rate", p.detection_rate}};
  };
  Json used = point(report.at_used);
  used["method"] = threshold_method_name(report.used.method);
  return {{"in_use", used}, {"f1_optimal", point(report.at_f1)}};
}

Json evaluation(const EvaluationReport& report) {
  Json images = Json::object();
  for (const auto& image : report.images) {
    images[image.relative_path] = {{"score", image.score},
                                   {"normalized", image.normalized},
                                   {"label", image.label},
                                   {"defect", image.defect},
                                   {"verdict", verdict_name(image.verdict)}};
  }
  Json times = timings(report.timings);
  times["metrics_s"] = report.metrics_seconds;
  times["total_s"] = report.seconds;
  return {
      {"category", report.category},
      {"image_auroc", report.image_auroc},
      {"pixel_auroc", number_or_null(report.pixel_auroc)},
      {"pro", number_or_null(report.pro)},
      {"image_threshold", report.used.image},
      {"pixel_threshold", report.used.pixel},
      {"threshold_source", report.used_model_thresholds ? "model" : "this evaluation"},
      {"f1_optimal",
       {{"image_threshold", report.computed.image}, {"pixel_threshold", report.computed.pixel}}},
      {"image_f1", report.image_f1},
      {"threshold_method", threshold_method_name(report.used.method)},
      {"threshold_description", report.used.source},
      {"operating_points", operating_points(report)},
      {"defect_precision_at_5", number_or_null(report.defect_precision_at_5)},
      {"defect_precision_at_5_mean_pooling",
       number_or_null(report.defect_precision_at_5_mean_pooling)},
      {"normalization",
       {{"image_min", report.used.image_min},
        {"image_max", report.used.image_max},
        {"pixel_min", report.used.pixel_min},
        {"pixel_max", report.used.pixel_max}}},
      {"images", images},
      {"timings", times}};
}

Json fit(const ModelInfo& info, const FitReport& fit) {
  const TilingOptions& tiling = info.options.embedder.tiling;
  return {
      {"backbone", info.backbone.backbone},
      {"pretrained", info.pretrained},
      {"train_images", info.train_images},
      {"train_patches", info.train_patches},
      {"bank_size", info.bank_size},
      {"coreset_method", coreset_method_name(info.options.coreset)},
      {"tiling",
       tiling.enabled()
           ? Json{{"size", tiling.size}, {"overlap", tiling.overlap}, {"scale", tiling.scale}}
           : Json()},
      {"projection_dim", info.options.projection_dim},
      {"covering_radius", info.covering_radius},
      {"spilled_to_disk", fit.spilled},
      {"peak_memory_bytes", fit.peak_memory_bytes},
      {"precision", precision_name(info.backbone.precision)},
      {"agreement", info.agreement ? agreement(*info.agreement) : Json()},
      {"shortlist_check", info.shortlist_check ? shortlist_check(*info.shortlist_check) : Json()},
      {"timings",
       {{"batchnorm_s", fit.batchnorm_seconds},
        {"embed_s", fit.embed_seconds},
        {"project_s", fit.project_seconds},
        {"coreset_s", fit.coreset_seconds},
        {"calibrate_s", fit.calibration_seconds},
        {"fit_s", fit.total_seconds}}}};
}

Json training(const TrainResult& result) {
  const ModelInfo& info = result.model.info();
  Json entry = {{"category", info.category},
                {"fit", fit(info, result.fit)},
                {"thresholds", info.thresholds ? thresholds(*info.thresholds) : Json()}};
  if (info.similarity) entry["min_similarity"] = info.similarity->min_similarity;
  if (result.evaluation) {
    const EvaluationReport& report = *result.evaluation;
    entry["image_auroc"] = report.image_auroc;
    entry["pixel_auroc"] = number_or_null(report.pixel_auroc);
    entry["pro"] = number_or_null(report.pro);
    entry["operating_points"] = operating_points(report);
  }
  entry["notes"] = result.notes;
  return entry;
}

}  // namespace pv::json
