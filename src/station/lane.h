// One lane at work: a thread that takes its source's frames one at a time (a folder's files, a
// camera's or stream's frames), inspects each through the Inspector (the one inspection use
// case), records the result in the lane's journal before anything else happens to the frame,
// wakes the sinks, and then lets the source move the file on.
#pragma once

#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <patchvec/inspector.h>
#include <patchvec/station.h>

#include "station/archive.h"
#include "station/journal.h"
#include "station/latency.h"
#include "station/sink.h"
#include "station/source.h"

namespace pv::station {

// Thread-safety: status() from any thread; the rest from the thread that owns the lane.
class LaneRunner {
 public:
  // Opens the lane's journal (its segments in <lane_dir>), its source and its sinks (which start
  // delivering what is recorded at once). Throws pv::Error naming the lane and what failed.
  // `on_record` (may be empty) is called after each result is recorded.
  LaneRunner(const Lane& lane, std::string category, const std::string& station,
             const Inspector& inspector, const std::filesystem::path& lane_dir,
             std::function<void()> on_record = {});
  ~LaneRunner();
  LaneRunner(const LaneRunner&) = delete;
  LaneRunner& operator=(const LaneRunner&) = delete;

  void start();
  // Stops taking frames; the image in flight finishes and is recorded. Then the sinks get until
  // `deadline` to deliver what is recorded.
  void stop(std::chrono::steady_clock::time_point deadline);
  LaneStatus status() const;
  // A software trigger for the lane's camera (Source::trigger()).
  void trigger() const;
  // The last image inspected in this run, with its prediction; nullptr before the first.
  std::shared_ptr<const Inspected> latest() const;
  // The lane's lines of /metrics (counters, latency histograms, sinks), without # TYPE lines.
  std::string prometheus() const;

 private:
  void run();
  void trim_journal();
  void take(const Frame& frame);

  const Lane lane_;
  const std::string category_;
  const std::string station_;
  const Inspector& inspector_;
  Journal journal_;
  std::unique_ptr<Source> source_;
  std::optional<Archive> archive_;
  LaneSignals signals_;  // before the sinks that read it
  std::vector<std::unique_ptr<Sink>> sinks_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

  const std::function<void()> on_record_;
  std::atomic<std::uint64_t> inspected_{0}, ok_{0}, nok_{0}, failed_{0};
  LatencyRecorder latency_;   // capture to recorded
  mutable std::mutex mutex_;  // guards latest_ and recent_
  std::shared_ptr<const Inspected> latest_;
  std::deque<std::chrono::steady_clock::time_point> recent_;  // records of the last 10 s
};

}  // namespace pv::station
