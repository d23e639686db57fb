// Messages for the person at the terminal. Everything goes to stderr so that stdout stays
// machine-readable (--json, tables). Each message is one line: control characters and bytes that
// are not UTF-8 are written as \xNN (pv::printable()). Thread-safe.
#pragma once

#include <string_view>

namespace pv::log {

void info(std::string_view message);
void warn(std::string_view message);

// Silences info() (warnings stay); used by --quiet and by tests.
void set_quiet(bool quiet);
bool quiet();

}  // namespace pv::log
