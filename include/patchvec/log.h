// Messages for the person at the terminal. Everything goes to stderr so that stdout stays
// machine-readable (--json, tables). Thread-safe.
#pragma once

#include <string_view>

namespace pv::log {

void info(std::string_view message);
void warn(std::string_view message);

// Silences info() (warnings stay); used by --quiet and by tests.
void set_quiet(bool quiet);
bool quiet();

}  // namespace pv::log
