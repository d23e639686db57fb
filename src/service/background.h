// The service's background work: a readiness check of the store every second, so that /healthz
// answers at once whatever the store does, and the report spool's flush every two seconds.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include <patchvec/inspector.h>

namespace pv::service {

// Thread-safety: ready() may be called from any thread. The threads start in the constructor and
// stop (and are joined) in the destructor; `inspector` must outlive this.
class Background {
 public:
  explicit Background(Inspector& inspector);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  // The store answered its last check, and the check under way (if any) is younger than 3 s.
  bool ready() const;

 private:
  void check_readiness_until_stopped();
  void flush_spool_until_stopped();

  Inspector& inspector_;
  // Both threads wait on these and stop together.
  std::mutex mutex_;
  std::condition_variable wakeup_;
  bool stopping_ = false;
  // What the last check found, and when the check under way (if any) began.
  mutable std::mutex readiness_mutex_;
  bool ok_ = true;
  std::optional<std::chrono::steady_clock::time_point> checking_since_;
  std::thread spool_flusher_;
  std::thread readiness_checker_;
};

}  // namespace pv::service
