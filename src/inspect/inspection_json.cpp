#include "inspect/inspection_json.h"

#include <cmath>

namespace pv::json {
namespace {

nlohmann::ordered_json number_or_null(double value) {
  return std::isnan(value) ? nlohmann::ordered_json() : nlohmann::ordered_json(value);
}

nlohmann::ordered_json matches(const std::vector<Match>& list) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const Match& m : list) out.push_back(match(m));
  return out;
}

}  // namespace

nlohmann::ordered_json match(const Match& m) {
  return {{"id", m.image.id},
          {"path", m.image.path},
          {"category", m.image.category},
          {"label", m.image.anomalous ? "anomalous" : "normal"},
          {"defect", m.image.defect},
          {"similarity", m.similarity}};
}

nlohmann::ordered_json inspection(const Inspection& r) {
  return {{"path", r.path},
          {"category", r.category},
          {"verdict", r.anomalous ? "anomalous" : "normal"},
          {"reason", r.reason},
          {"score", r.score},
          {"normalized", number_or_null(r.normalized)},
          {"threshold", number_or_null(r.threshold)},
          {"best_similarity", r.best_similarity},
          {"matches", matches(r.matches)},
          {"report_id", r.report_id ? nlohmann::ordered_json(*r.report_id) : nullptr}};
}

nlohmann::ordered_json report(const AnomalyReport& r) {
  const auto text_or_null = [](const std::string& text) {
    return text.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(text);
  };
  return {{"id", r.id},
          {"created", r.created},
          {"path", r.path},
          {"category", r.category},
          {"score", r.score},
          {"threshold", number_or_null(r.threshold)},
          {"best_similarity", r.best_similarity},
          {"matches", matches(r.matches)},
          {"status", r.status},
          {"resolution", text_or_null(r.resolution)},
          {"defect", text_or_null(r.defect)},
          {"note", r.note},
          {"resolved_by", text_or_null(r.resolved_by)},
          {"resolved_at", text_or_null(r.resolved_at)},
          {"applied", r.applied}};
}

}  // namespace pv::json
