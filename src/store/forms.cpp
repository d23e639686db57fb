#include "store/forms.h"

#include <patchvec/error.h>

#include "util/json_numbers.h"

namespace pv::store {

Verdict stored_verdict(std::string_view text) {
  return text.empty() ? Verdict::kUnknown : parse_verdict(text, "stored verdict");
}

std::string stored_resolution_text(const std::optional<Resolution>& resolution) {
  return resolution ? resolution_name(*resolution) : "";
}

std::optional<Resolution> stored_resolution(std::string_view text) {
  if (text.empty()) return std::nullopt;
  return parse_resolution(text);
}

void check_dataset_images(std::span<const StoredImage> images) {
  for (const StoredImage& image : images) {
    if (image.split == Split::kAdded) {
      throw Error("image " + image.path +
                  " of split 'added' in a dataset: add it on its own (add_image)");
    }
  }
}

nlohmann::json match_json(const Match& m) {
  return {{"id", m.image.id},
          {"path", m.image.path},
          {"category", m.image.category},
          {"anomalous", m.image.anomalous},
          {"defect", m.image.defect},
          {"similarity", m.similarity}};
}

Match match_from(const nlohmann::json& j) {
  // The embedded store's first form nested the whole stored image.
  const nlohmann::json& image = j.contains("image") ? j.at("image") : j;
  Match m;
  m.image.id = json_integer<std::int64_t>(image.at("id"), "match id");
  m.image.path = image.at("path").get<std::string>();
  m.image.category = image.at("category").get<std::string>();
  m.image.anomalous = image.at("anomalous").get<bool>();
  m.image.defect = image.at("defect").get<std::string>();
  m.similarity = json_real<double>(j.at("similarity"), "match similarity");
  return m;
}

nlohmann::json report_json(const AnomalyReport& r) {
  nlohmann::json matches = nlohmann::json::array();
  for (const Match& m : r.matches) {
    matches.push_back(match_json(m));
  }
  return {{"id", r.id},
          {"path", r.path},
          {"category", r.category},
          {"score", r.score},
          {"threshold", r.threshold},
          {"best_similarity", r.best_similarity},
          {"created", r.created},
          {"matches", matches},
          {"image", r.image},
          {"status", report_status_name(r.status)},
          {"resolution", stored_resolution_text(r.resolution)},
          {"defect", r.defect},
          {"note", r.note},
          {"resolved_by", r.resolved_by},
          {"resolved_at", r.resolved_at},
          {"applied", r.applied},
          {"idempotency_key", r.idempotency_key}};
}

AnomalyReport report_from(const nlohmann::json& j) {
  AnomalyReport r;
  r.id = json_integer<std::int64_t>(j.at("id"), "report id");
  r.path = j.at("path").get<std::string>();
  r.category = j.at("category").get<std::string>();
  r.score = json_real<float>(j.at("score"), "report score");
  r.threshold = json_real<float>(j.at("threshold"), "report threshold");
  r.best_similarity = json_real<double>(j.at("best_similarity"), "report similarity");
  r.created = j.at("created").get<std::string>();
  for (const auto& m : j.at("matches")) {
    r.matches.push_back(match_from(m));
  }
  // Stores written before reports could be resolved have none of these: open reports.
  if (j.contains("status")) {
    r.image = j.at("image").get<std::string>();
    const auto status = j.at("status").get<std::string>();
    try {
      r.status = parse_report_status(status);
      r.resolution = stored_resolution(j.at("resolution").get<std::string>());
    } catch (const Error& e) {
      throw Error("report " + std::to_string(r.id) + ": " + e.what());
    }
    r.defect = j.at("defect").get<std::string>();
    r.note = j.at("note").get<std::string>();
    r.resolved_by = j.at("resolved_by").get<std::string>();
    r.resolved_at = j.at("resolved_at").get<std::string>();
    r.applied = j.at("applied").get<bool>();
  }
  if (j.contains("idempotency_key")) r.idempotency_key = j.at("idempotency_key").get<std::string>();
  return r;
}

}  // namespace pv::store
