#include <memory>
#include <mutex>

#include <patchvec/interrupt.h>

namespace pv {
namespace {

std::mutex g_mutex;
std::shared_ptr<const std::function<bool()>> g_check;  // guarded by g_mutex

}  // namespace

void set_interrupt_check(std::function<bool()> check) {
  const std::lock_guard lock(g_mutex);
  g_check = check ? std::make_shared<const std::function<bool()>>(std::move(check)) : nullptr;
}

void check_interrupt() {
  std::shared_ptr<const std::function<bool()>> check;
  {
    const std::lock_guard lock(g_mutex);
    check = g_check;
  }
  // Called without the lock: the check may take a lock of its own (Python's GIL).
  if (check && (*check)()) throw Interrupted();
}

}  // namespace pv
