#include "service/slots.h"

#include <algorithm>

namespace pv::service {

bool FairSlots::acquire_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (free_ > 0 && waiting_.empty()) {
    --free_;
    return true;
  }
  Waiter me;
  waiting_.push_back(&me);
  if (me.woken.wait_for(lock, timeout, [&] { return me.granted; })) return true;
  // Timed out: leave the line (a slot granted at the last moment counts as taken).
  if (me.granted) return true;
  waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &me));
  return false;
}

void FairSlots::release() {
  const std::lock_guard lock(mutex_);
  if (waiting_.empty()) {
    ++free_;
    return;
  }
  Waiter* next = waiting_.front();
  waiting_.pop_front();
  next->granted = true;  // the slot passes straight to the oldest waiter
  next->woken.notify_one();
}

}  // namespace pv::service
