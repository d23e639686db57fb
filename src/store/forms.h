// How both stores write what they keep as text or JSON: verdicts and the matches a report showed.
// One form for both, read strictly (a store file is untrusted bytes). Thread-safe.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <patchvec/store.h>
#include <patchvec/verdict.h>

namespace pv::store {

// verdict_name() text; stores written before verdicts had one spelling hold "" for an image that
// was not scored. Throws pv::Error for text that is no verdict (a damaged file or row).
Verdict stored_verdict(std::string_view text);

// resolution_name() text, "" for none (an open report); back, throwing pv::Error for text that
// is no resolution.
std::string stored_resolution_text(const std::optional<Resolution>& resolution);
std::optional<Resolution> stored_resolution(std::string_view text);

// Throws pv::Error for an image of split kAdded among a dataset's (replace_dataset()): added
// images come one at a time, and would otherwise outlive every re-index.
void check_dataset_images(std::span<const StoredImage> images);

// {"id", "path", "category", "anomalous", "defect", "similarity"}: a match as reports keep it (the
// API's form is json::match()).
nlohmann::json match_json(const Match& match);

// The form above, or the embedded store's earlier {"image": {...}, "similarity"}. Throws
// pv::Error or nlohmann::json::exception for anything else.
Match match_from(const nlohmann::json& json);

// A report with everything a store keeps of it, as the embedded store's file and the report spool
// hold it; reports of earlier forms (without a decision or a key) read as open ones. Throws
// pv::Error or nlohmann::json::exception for anything else.
nlohmann::json report_json(const AnomalyReport& report);
AnomalyReport report_from(const nlohmann::json& json);

}  // namespace pv::store
