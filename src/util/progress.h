// A progress bar for long work, drawn on stderr.
//
// On a terminal it redraws one line (at most ten times a second) with the count, rate and
// remaining time; elsewhere (CI logs, pipes) it stays silent until the end and then prints one
// summary line. Not thread-safe: advance() from one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace pv {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::size_t total, std::string unit = "images");
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar();  // finish() if not done yet

  void advance(std::size_t n = 1);
  void finish();

  double elapsed_seconds() const;

 private:
  void draw(bool final_line);

  std::string label_;
  std::string unit_;
  std::size_t total_;
  std::size_t done_ = 0;
  bool finished_ = false;
  bool interactive_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace pv
