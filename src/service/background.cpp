#include "service/background.h"

#include <patchvec/log.h>

namespace pv::service {

Background::Background(Inspector& inspector) : inspector_(inspector) {
  spool_flusher_ = std::thread([this] { flush_spool_until_stopped(); });
  readiness_checker_ = std::thread([this] { check_readiness_until_stopped(); });
}

Background::~Background() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wakeup_.notify_all();
  if (spool_flusher_.joinable()) spool_flusher_.join();
  if (readiness_checker_.joinable()) readiness_checker_.join();
}

bool Background::ready() const {
  constexpr auto kDeadline = std::chrono::seconds(3);
  const std::lock_guard guard(readiness_mutex_);
  return ok_ &&
         (!checking_since_ || std::chrono::steady_clock::now() - *checking_since_ < kDeadline);
}

// Every second: can the store answer? Changes of state are logged once, with the details.
void Background::check_readiness_until_stopped() {
  VectorStore& store = inspector_.store();
  std::unique_lock lock(mutex_);
  do {
    lock.unlock();
    {
      const std::lock_guard guard(readiness_mutex_);
      checking_since_ = std::chrono::steady_clock::now();
    }
    std::string problem;
    try {
      store.ping();
    } catch (const std::exception& e) {
      problem = e.what();
    }
    {
      const std::lock_guard guard(readiness_mutex_);
      if (problem.empty() && !ok_) log::info("ready again: " + store.location());
      if (!problem.empty() && ok_) log::warn("not ready: " + problem);
      ok_ = problem.empty();
      checking_since_.reset();
    }
    lock.lock();
  } while (!wakeup_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; }));
}

// Every 2 s: the spooled reports to the store, once it takes them.
void Background::flush_spool_until_stopped() {
  std::unique_lock lock(mutex_);
  while (!wakeup_.wait_for(lock, std::chrono::seconds(2), [&] { return stopping_; })) {
    lock.unlock();
    try {
      const std::size_t stored = inspector_.flush_reports();
      if (stored > 0) {
        log::info("stored " + std::to_string(stored) + " spooled report(s) in " +
                  inspector_.store().location());
      }
    } catch (const std::exception& e) {
      log::warn(std::string("flushing the report spool: ") + e.what());
    }
    lock.lock();
  }
}

}  // namespace pv::service
