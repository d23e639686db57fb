#include "util/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

#include <patchvec/log.h>

namespace pv {
namespace {

bool stderr_is_terminal() {
  if (log::has_sink()) return false;  // messages go elsewhere: no bar to redraw
  if (const char* forced = std::getenv("PATCHVEC_PROGRESS")) return std::string(forced) == "1";
  return isatty(STDERR_FILENO) != 0;
}

std::string format_duration(double seconds) {
  char buffer[32];
  const int total = static_cast<int>(std::lround(seconds));
  if (total >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%dh%02dm", total / 3600, total / 60 % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%d:%02d", total / 60, total % 60);
  }
  return buffer;
}

}  // namespace

ProgressBar::ProgressBar(std::string label, std::size_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      interactive_(stderr_is_terminal() && !log::quiet()),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {
  if (interactive_) draw(false);
}

ProgressBar::~ProgressBar() {
  finish();
}

void ProgressBar::advance(std::size_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (interactive_ && now - last_draw_ > std::chrono::milliseconds(100)) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (!log::quiet()) draw(true);
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::draw(bool final_line) {
  const double seconds = elapsed_seconds();
  const double fraction = total_ == 0 ? 1.0 : static_cast<double>(done_) / total_;
  const double rate = seconds > 0 ? done_ / seconds : 0.0;
  char tail[160];
  if (final_line) {
    std::snprintf(tail, sizeof tail, "%zu/%zu %s in %.1f s (%.1f %s/s)", done_, total_,
                  unit_.c_str(), seconds, rate, unit_.c_str());
  } else {
    const double remaining = rate > 0 ? (total_ - done_) / rate : 0.0;
    std::snprintf(tail, sizeof tail, "%zu/%zu %s, %.1f/s, %s left", done_, total_, unit_.c_str(),
                  rate, format_duration(remaining).c_str());
  }
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(kWidth + 2, '.');
  bar.front() = '[';
  bar.back() = ']';
  std::fill_n(bar.begin() + 1, filled, '#');
  if (interactive_) {
    std::fprintf(stderr, "\r\033[2K%-18s %s %3d%% %s%s", label_.c_str(), bar.c_str(),
                 static_cast<int>(fraction * 100), tail, final_line ? "\n" : "");
    std::fflush(stderr);
  } else if (final_line) {
    char line[200];
    std::snprintf(line, sizeof line, "%-18s %s", label_.c_str(), tail);
    log::info(line);
  }
}

}  // namespace pv
