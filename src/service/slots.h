// A counting semaphore that admits waiters in the order they came: inspections waiting for a slot
// are served first come, first served (std::counting_semaphore promises no order, and under load
// some requests waited 20 s while others passed them). Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <list>
#include <mutex>

namespace pv::service {

class FairSlots {
 public:
  explicit FairSlots(int slots) : free_(slots < 1 ? 1 : slots) {}

  // Takes a slot, waiting behind earlier callers for at most `timeout`; false if none came.
  bool acquire_for(std::chrono::milliseconds timeout);
  void release();

 private:
  struct Waiter {
    std::condition_variable woken;
    bool granted = false;
  };
  std::mutex mutex_;
  int free_;
  std::list<Waiter*> waiting_;  // oldest first
};

}  // namespace pv::service
