// The JSON forms of inspections, matches and reports, shared by the CLI (--json) and the HTTP
// service so that both speak the same fields (docs/api.md).
#pragma once

#include <nlohmann/json.hpp>

#include <patchvec/inspection.h>
#include <patchvec/store.h>

namespace pv::json {

// {"id", "path", "category", "label", "defect", "similarity"}
nlohmann::ordered_json match(const Match& match);

// {"path", "category", "verdict", "reason", "score", "normalized", "threshold", "best_similarity",
//  "matches": [match], "report_id"}; NaN (no thresholds) is null.
nlohmann::ordered_json inspection(const Inspection& inspection);

// {"id", "created", "path", "category", "score", "threshold", "best_similarity", "matches":
// [match], "status", "resolution", "defect", "note", "resolved_by", "resolved_at", "applied"}
nlohmann::ordered_json report(const AnomalyReport& report);

}  // namespace pv::json
