// Wall-clock timing for reports.
#pragma once

#include <chrono>

namespace pv {

class Stopwatch {
 public:
  Stopwatch() : last_(std::chrono::steady_clock::now()), start_(last_) {}

  // Seconds since construction or the previous lap().
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return seconds;
  }

  double total() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point last_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace pv
