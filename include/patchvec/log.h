// Messages for the person at the terminal. Everything goes to stderr so that stdout stays
// machine-readable (--json, tables). Each message is one line: control characters and bytes that
// are not UTF-8 are written as \xNN (pv::printable()). Thread-safe.
#pragma once

#include <functional>
#include <string_view>

namespace pv::log {

void info(std::string_view message);
void warn(std::string_view message);

// Silences info() (warnings stay); used by --quiet and by tests.
void set_quiet(bool quiet);
bool quiet();

enum class Level { kInfo, kWarning };

// Receives every message instead of stderr (one line, already made printable, without the
// "patchvec: warning: " prefix or a newline), from whichever thread logs it; progress bars then
// send their summary line through it instead of drawing. For embedding programs with a logging
// system of their own (the Python module hands messages to Python's `logging`). Empty: stderr.
// set_quiet() still silences info(). The sink must be thread-safe: several threads may call it
// at once (it is called without any lock of log's held).
using Sink = std::function<void(Level level, std::string_view message)>;
void set_sink(Sink sink);
bool has_sink();

}  // namespace pv::log
