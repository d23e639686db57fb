#include "store/forms.h"

#include "util/json_numbers.h"

namespace pv::store {

Verdict stored_verdict(std::string_view text) {
  return text.empty() ? Verdict::kUnknown : parse_verdict(text, "stored verdict");
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

}  // namespace pv::store
