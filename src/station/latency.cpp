#include "station/latency.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace pv::station {

void LatencyRecorder::observe(double seconds) {
  const std::lock_guard lock(mutex_);
  std::size_t bucket = 0;
  while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
  ++buckets_[bucket];
  sum_ += seconds;
  ++count_;
  if (recent_.size() < kRecent) {
    recent_.push_back(seconds);
  } else {
    recent_[next_] = seconds;
    next_ = (next_ + 1) % kRecent;
  }
}

double LatencyRecorder::percentile_ms(double q) const {
  std::vector<double> values;
  {
    const std::lock_guard lock(mutex_);
    values = recent_;
  }
  if (values.empty()) return 0;
  const auto at = static_cast<std::size_t>(std::lround(q * static_cast<double>(values.size() - 1)));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(at), values.end());
  return values[at] * 1000;
}

std::string LatencyRecorder::prometheus(const std::string& name, const std::string& labels) const {
  const std::lock_guard lock(mutex_);
  std::string out;
  long long cumulative = 0;
  for (std::size_t i = 0; i <= kBuckets.size(); ++i) {
    cumulative += buckets_[i];
    char le[32] = "+Inf";
    if (i < kBuckets.size()) std::snprintf(le, sizeof le, "%g", kBuckets[i]);
    out += name + "_bucket{" + labels + ",le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  char sum[64];
  std::snprintf(sum, sizeof sum, "%.6f", sum_);
  out += name + "_sum{" + labels + "} " + sum + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(count_) + "\n";
  return out;
}

std::string label_value(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace pv::station
