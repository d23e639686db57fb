// Latencies as a station reports them: a Prometheus histogram (seconds) and the percentiles of
// the most recent ones, for the station view.
#pragma once

#include <array>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace pv::station {

// Thread-safety: every method from any thread.
class LatencyRecorder {
 public:
  void observe(double seconds);
  // The q-quantile (0..1) of the last 1,000 observations, in milliseconds; 0 without any.
  double percentile_ms(double q) const;
  // `name`_bucket/_sum/_count lines with `labels` ('lane="top"'), without the # TYPE line.
  std::string prometheus(const std::string& name, const std::string& labels) const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.01, 0.025, 0.05, 0.1,  0.25, 0.5,
                                                      1.0,  2.5,   5.0,  10.0, 30.0, 60.0};
  static constexpr std::size_t kRecent = 1000;
  mutable std::mutex mutex_;
  std::array<long long, kBuckets.size() + 1> buckets_{};  // last: +Inf
  double sum_ = 0;
  long long count_ = 0;
  std::vector<double> recent_;  // a ring of the last kRecent
  std::size_t next_ = 0;
};

// `text` as a Prometheus label value: backslash, quote and newline escaped.
std::string label_value(const std::string& text);

}  // namespace pv::station
