#include "service/metrics.h"

#include <cstdio>

namespace pv::service {

void Metrics::count_request(const std::string& route, int status) {
  const std::lock_guard guard(mutex_);
  ++requests_[{route, status}];
}

void Metrics::observe_inspect(double seconds) {
  const std::lock_guard guard(mutex_);
  std::size_t bucket = 0;
  while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
  ++buckets_[bucket];
  latency_sum_ += seconds;
  ++latency_count_;
}

std::string Metrics::prometheus_text(long long batches, long long batched_images,
                                     long long pending_reports) const {
  const std::lock_guard guard(mutex_);
  std::string out;
  char line[256];
  out += "# HELP patchvec_requests_total HTTP requests by route and status.\n";
  out += "# TYPE patchvec_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    std::snprintf(line, sizeof line, "patchvec_requests_total{route=\"%s\",status=\"%d\"} %lld\n",
                  key.first.c_str(), key.second, count);
    out += line;
  }
  out += "# HELP patchvec_inspect_seconds Time to answer POST /v1/inspect.\n";
  out += "# TYPE patchvec_inspect_seconds histogram\n";
  long long cumulative = 0;
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += buckets_[i];
    std::snprintf(line, sizeof line, "patchvec_inspect_seconds_bucket{le=\"%g\"} %lld\n",
                  kBuckets[i], cumulative);
    out += line;
  }
  cumulative += buckets_.back();
  std::snprintf(line, sizeof line,
                "patchvec_inspect_seconds_bucket{le=\"+Inf\"} %lld\n"
                "patchvec_inspect_seconds_sum %.6f\npatchvec_inspect_seconds_count %lld\n",
                cumulative, latency_sum_, latency_count_);
  out += line;
  out += "# HELP patchvec_anomalies_reported_total Anomaly reports written.\n";
  out += "# TYPE patchvec_anomalies_reported_total counter\n";
  std::snprintf(line, sizeof line, "patchvec_anomalies_reported_total %lld\n", reports_.load());
  out += line;
  out += "# HELP patchvec_forward_passes_total Forward passes the prediction batcher ran.\n";
  out += "# TYPE patchvec_forward_passes_total counter\n";
  std::snprintf(line, sizeof line, "patchvec_forward_passes_total %lld\n", batches);
  out += line;
  out += "# HELP patchvec_predicted_images_total Images those forward passes carried.\n";
  out += "# TYPE patchvec_predicted_images_total counter\n";
  std::snprintf(line, sizeof line, "patchvec_predicted_images_total %lld\n", batched_images);
  out += line;
  out +=
      "# HELP patchvec_reports_pending Reports in the spool, waiting for the store to take them.\n";
  out += "# TYPE patchvec_reports_pending gauge\n";
  std::snprintf(line, sizeof line, "patchvec_reports_pending %lld\n", pending_reports);
  out += line;
  return out;
}

}  // namespace pv::service
