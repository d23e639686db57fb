#include <atomic>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>

#include <patchvec/log.h>
#include <patchvec/text.h>

namespace pv::log {
namespace {

std::mutex g_mutex;
std::atomic<bool> g_quiet{false};

void write(std::string_view text) {
  const std::lock_guard lock(g_mutex);
  std::cerr << text << std::flush;
}

}  // namespace

// One line each, whatever a message repeats from outside (a request's path, a file name): a
// control character cannot start a forged line or reach the terminal.
void info(std::string_view message) {
  if (!g_quiet) write(printable(message) + "\n");
}

void warn(std::string_view message) {
  write("patchvec: warning: " + printable(message) + "\n");
}

void set_quiet(bool quiet) {
  g_quiet = quiet;
}
bool quiet() {
  return g_quiet;
}

}  // namespace pv::log
