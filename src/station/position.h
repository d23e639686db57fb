// How far a sink has delivered a lane's journal: the sequence number up to which every record is
// acknowledged by the other side, kept in a small file of its own (<state>/<lane>/<sink>.position)
// and written atomically. Records after it are the sink's outbox; after a crash they are sent
// again, so a consumer may see a record twice (its "key" tells) but never misses one.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>

namespace pv::station {

// Thread-safety: one thread at a time.
class SinkPosition {
 public:
  // Reads `file` (0 when it does not exist yet); throws pv::Error naming a file that is not a
  // number, or one beyond `journal_size` (the journal was replaced under it).
  SinkPosition(std::filesystem::path file, std::uint64_t journal_size);

  std::uint64_t delivered() const { return delivered_; }
  // Moves the position on (never back); saved by save(), at most every `interval` by save_due().
  void advance(std::uint64_t delivered);
  void save();
  void save_due(std::chrono::milliseconds interval);

 private:
  std::filesystem::path file_;
  std::uint64_t delivered_ = 0;
  std::uint64_t saved_ = 0;
  std::chrono::steady_clock::time_point saved_at_;
};

}  // namespace pv::station
