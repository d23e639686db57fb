// Counters and a latency histogram in Prometheus' text format. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>

namespace pv::service {

class Metrics {
 public:
  void count_request(const std::string& route, int status);
  void observe_inspect(double seconds);
  void count_report() { ++reports_; }
  // With the batcher's counts of forward passes and the images they carried.
  std::string prometheus_text(long long batches = 0, long long batched_images = 0,
                              long long pending_reports = 0) const;

 private:
  static constexpr std::array<double, 10> kBuckets = {0.05, 0.1, 0.2, 0.3, 0.5,
                                                      0.75, 1.0, 2.0, 5.0, 10.0};
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, long long> requests_;
  std::array<long long, kBuckets.size() + 1> buckets_{};  // last: +Inf
  double latency_sum_ = 0;
  long long latency_count_ = 0;
  std::atomic<long long> reports_ = 0;
};

}  // namespace pv::service
