// Where a lane's results go: one interface, one implementation per kind (mqtt_sink.h, ...).
// Each sink delivers the lane's journal from its SinkPosition on a thread of its own, so that a
// sink that is down holds up neither the lane nor the other sinks.
#pragma once

#include <chrono>

#include <patchvec/station.h>

namespace pv::station {

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
};

}  // namespace pv::station
