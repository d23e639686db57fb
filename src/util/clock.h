// The current time as people and files read it.
#pragma once

#include <string>

namespace pv {

// "2026-11-28T21:04:05Z": ISO 8601, UTC, whole seconds (texts sort like the times they name).
std::string utc_now();

}  // namespace pv
