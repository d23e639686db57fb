#include <atomic>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include <patchvec/log.h>
#include <patchvec/text.h>

namespace pv::log {
namespace {

std::mutex g_mutex;
std::atomic<bool> g_quiet{false};
std::shared_ptr<const Sink> g_sink;  // guarded by g_mutex

void write(Level level, std::string_view message) {
  const std::string line = printable(message);
  std::unique_lock lock(g_mutex);
  if (g_sink) {
    // Called without the lock: a sink may wait for a lock of its own (Python's GIL) that a
    // thread logging at the same time holds.
    const std::shared_ptr<const Sink> sink = g_sink;
    lock.unlock();
    (*sink)(level, line);
    return;
  }
  std::cerr << (level == Level::kWarning ? "patchvec: warning: " : "") << line << "\n"
            << std::flush;
}

}  // namespace

// One line each, whatever a message repeats from outside (a request's path, a file name): a
// control character cannot start a forged line or reach the terminal.
void info(std::string_view message) {
  if (!g_quiet) write(Level::kInfo, message);
}

void warn(std::string_view message) {
  write(Level::kWarning, message);
}

void set_quiet(bool quiet) {
  g_quiet = quiet;
}
bool quiet() {
  return g_quiet;
}

void set_sink(Sink sink) {
  const std::lock_guard lock(g_mutex);
  g_sink = sink ? std::make_shared<const Sink>(std::move(sink)) : nullptr;
}

bool has_sink() {
  const std::lock_guard lock(g_mutex);
  return g_sink != nullptr;
}

}  // namespace pv::log
