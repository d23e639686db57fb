// Where a lane's results go: one interface, one implementation per kind (mqtt_sink.h,
// webhook_sink.h). Each sink delivers the lane's journal from its SinkPosition on a thread of its
// own, so that a sink that is down holds up neither the lane nor the other sinks.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include <poll.h>

#include <patchvec/station.h>

#include "station/journal.h"
#include "station/latency.h"
#include "station/position.h"

namespace pv::station {

// What a lane is doing, for the sinks that show it (the Modbus registers' busy and fault bits).
struct LaneSignals {
  std::atomic<bool> busy{false};   // an image is being inspected
  std::atomic<bool> fault{false};  // the last image failed for a reason not the file's
};

// Thread-safety: every method from any thread.
class Sink {
 public:
  virtual ~Sink() = default;
  // A record was appended to the journal: deliver it soon.
  virtual void notify() = 0;
  // Delivers what is recorded until everything is acknowledged or `deadline` passes, then stops
  // the thread; the position is saved either way.
  virtual void drain_and_stop(std::chrono::steady_clock::time_point deadline) = 0;
  virtual SinkStatus status() const = 0;
  // Capture to acknowledged, for the results of this run.
  virtual const LatencyRecorder& latency() const = 0;
};

// What every sink shares: the journal and the position in it, the thread, a wake-up eventfd the
// lane signals, and stopping with a deadline. A subclass starts the thread (start()) at the end
// of its constructor, calls stop_thread() first in its destructor, and runs deliver().
class JournalSink : public Sink {
 public:
  JournalSink(const Journal& journal, const std::filesystem::path& position_file, std::string name);
  ~JournalSink() override;
  JournalSink(const JournalSink&) = delete;
  JournalSink& operator=(const JournalSink&) = delete;

  void notify() override;
  void drain_and_stop(std::chrono::steady_clock::time_point deadline) override;
  SinkStatus status() const override;
  const LatencyRecorder& latency() const override { return latency_; }

 protected:
  void start();
  void stop_thread() { drain_and_stop(std::chrono::steady_clock::now()); }
  // The sink's loop, on its thread, until stopping() says so; saves the position as it goes.
  virtual void deliver() = 0;

  // Stop asked for, and the deadline of the drain passed or nothing is left to deliver.
  bool stopping() const;
  bool stop_requested() const;
  // Waits up to `timeout` for a notify() or a stop; with `fd` >= 0, for it to be readable too
  // (`events` asks for POLLOUT as well). Returns poll()'s revents of `fd`.
  short wait(int timeout_ms, int fd = -1, short events = 0) const;
  // The same for several descriptors: their revents are filled in.
  void wait(int timeout_ms, std::span<pollfd> fds) const;
  // Records `delivered` as acknowledged (the position moves on; saved every 200 ms).
  void acknowledge(std::uint64_t delivered);
  void save_position_due();  // saves the position if it moved and 200 ms passed
  std::uint64_t delivered() const { return position_.delivered(); }

  const Journal& journal_;
  const std::string name_;
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> reconnects_{0};

 private:
  SinkPosition position_;  // the sink thread's, but for what the constructor reads
  LatencyRecorder latency_;
  std::atomic<std::uint64_t> delivered_;
  const std::uint64_t delivered_at_start_;
  int wake_ = -1;
  std::thread thread_;
  mutable std::mutex mutex_;  // guards stop_ and drain_until_
  bool stop_ = false;
  std::chrono::steady_clock::time_point drain_until_;
};

}  // namespace pv::station
