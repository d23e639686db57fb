// The current time as people and files read it.
#pragma once

#include <chrono>
#include <string>

namespace pv {

// "2026-11-28T21:04:05Z": ISO 8601, UTC, whole seconds (texts sort like the times they name).
std::string utc_now();

// "2026-11-28T21:04:05.123Z": `time` in ISO 8601, UTC, to the millisecond (events on a line).
std::string utc_time_ms(std::chrono::system_clock::time_point time);

}  // namespace pv
