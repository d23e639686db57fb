// What is said of an image: normal, anomalous, or unknown. One enum and one spelling for models,
// inspections, evaluations, stored images, the CLI and the HTTP API.
#pragma once

#include <string>
#include <string_view>

#include <patchvec/error.h>

namespace pv {

// kUnknown: nothing decided. A model without thresholds cannot decide (Prediction::verdict; its
// score is still meaningful, higher is more anomalous), and a stored image that was never scored
// has no verdict. Inspections always decide (the similarity rule needs no thresholds), and a label
// is never unknown.
enum class Verdict { kNormal, kAnomalous, kUnknown };

// "normal", "anomalous", "unknown": the one string form (JSON, the store, the CLI).
constexpr const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kNormal:
      return "normal";
    case Verdict::kAnomalous:
      return "anomalous";
    case Verdict::kUnknown:
      break;
  }
  return "unknown";
}

// A label as a verdict: true is kAnomalous.
constexpr Verdict verdict_of(bool anomalous) {
  return anomalous ? Verdict::kAnomalous : Verdict::kNormal;
}

// The verdict `name` spells; throws pv::Error naming `setting` for anything else.
inline Verdict parse_verdict(std::string_view name, std::string_view setting) {
  for (const Verdict v : {Verdict::kNormal, Verdict::kAnomalous, Verdict::kUnknown}) {
    if (name == verdict_name(v)) return v;
  }
  throw Error(std::string(setting) + " is '" + std::string(name) +
              "': expected normal, anomalous or unknown");
}

}  // namespace pv
