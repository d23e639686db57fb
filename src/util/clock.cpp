#include "util/clock.h"

#include <cstdio>
#include <ctime>

namespace pv {

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

std::string utc_time_ms(std::chrono::system_clock::time_point time) {
  const auto ms = std::chrono::time_point_cast<std::chrono::milliseconds>(time);
  const auto since = ms.time_since_epoch().count();
  const std::time_t seconds = static_cast<std::time_t>(since / 1000);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &parts);
  char out[40];
  std::snprintf(out, sizeof out, "%s.%03dZ", text, static_cast<int>(since % 1000));
  return out;
}

}  // namespace pv
