// One lane at work: a thread that takes the hot folder's files one at a time, inspects each
// through the Inspector (the one inspection use case), records the result in the lane's journal
// before anything else happens to the file, wakes the sinks, and then moves the file on.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <patchvec/inspector.h>
#include <patchvec/station.h>

#include "station/hot_folder.h"
#include "station/journal.h"
#include "station/sink.h"

namespace pv::station {

// Thread-safety: status() from any thread; the rest from the thread that owns the lane.
class LaneRunner {
 public:
  // Opens the lane's journal (<lane_dir>/journal.jsonl), its folder and its sinks (which start
  // delivering what is recorded at once). Throws pv::Error naming the lane and what failed.
  LaneRunner(const Lane& lane, std::string category, const std::string& station,
             const Inspector& inspector, const std::filesystem::path& lane_dir);
  ~LaneRunner();
  LaneRunner(const LaneRunner&) = delete;
  LaneRunner& operator=(const LaneRunner&) = delete;

  void start();
  // Stops taking files; the image in flight finishes and is recorded. Then the sinks get until
  // `deadline` to deliver what is recorded.
  void stop(std::chrono::steady_clock::time_point deadline);
  LaneStatus status() const;

 private:
  void run();
  void take(const std::string& name);
  void record(nlohmann::ordered_json result, const std::string& name,
              const std::filesystem::path& destination, bool failed, const std::string& reason);

  const Lane lane_;
  const std::string category_;
  const std::string station_;
  const Inspector& inspector_;
  Journal journal_;
  HotFolder folder_;
  LaneSignals signals_;  // before the sinks that read it
  std::vector<std::unique_ptr<Sink>> sinks_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

  std::atomic<std::uint64_t> inspected_{0}, ok_{0}, nok_{0}, failed_{0};
  mutable std::mutex latency_mutex_;
  std::vector<double> latencies_ms_;  // the last kLatencyWindow, a ring
  std::size_t latency_next_ = 0;
};

}  // namespace pv::station
