// A lane's journal: every result the lane records, one JSON object per line, appended and
// fsync'd before anything else happens to the image. It is the ledger (an image whose key it
// holds is never inspected again, across restarts and kill -9) and every sink's outbox (a sink
// delivers the records after its position, position.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

namespace pv::station {

// The largest record (one line): results are a few hundred bytes.
inline constexpr std::size_t kMaxRecordBytes = 64 << 10;

// What a journal's bytes hold: the complete records and how many bytes they take. A last line
// without its newline (a write cut short by a crash) is not part of it; any other line that is
// not a record with {"seq": its line number, "key": 32 hex digits} throws pv::Error naming
// `file` and the line.
struct ParsedJournal {
  std::vector<std::string> keys;       // in sequence order; keys[i] is record i + 1's
  std::vector<std::uint64_t> offsets;  // where each record's line starts
  std::uint64_t valid_bytes = 0;
};
ParsedJournal parse_journal(std::string_view bytes, const std::string& file);

// Thread-safety: append() from one thread at a time; everything else from any thread.
class Journal {
 public:
  // Opens (creating) `file`, drops a torn last line (logged), and holds every key in memory.
  // Throws pv::Error naming the file.
  explicit Journal(std::filesystem::path file);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  bool contains(const std::string& key) const;
  // Sets record["seq"] to the next sequence number, writes the line and fsyncs it; returns the
  // sequence number. `record` must carry "key" (32 hex digits) not recorded yet. Throws pv::Error
  // for a full disk (nothing recorded then: the line is cut off again). `captured` (when the
  // image was taken) is kept in memory for the sinks' delivery latencies.
  std::uint64_t append(nlohmann::ordered_json record,
                       std::chrono::system_clock::time_point captured = {});
  // What append() was given for record `seq`; the epoch for records of an earlier run.
  std::chrono::system_clock::time_point captured(std::uint64_t seq) const;
  std::uint64_t size() const;  // records; the last sequence number
  // The line of record `seq` (1 <= seq <= size()), without its newline.
  std::string read(std::uint64_t seq) const;
  // Waits until size() > `seq` or `timeout` passes; returns size().
  std::uint64_t wait_beyond(std::uint64_t seq, std::chrono::milliseconds timeout) const;
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
  int fd_ = -1;
  mutable std::mutex mutex_;
  mutable std::condition_variable grown_;
  std::unordered_set<std::string> keys_;
  std::vector<std::uint64_t> offsets_;
  std::vector<std::chrono::system_clock::time_point> captured_;  // by seq - 1
  std::uint64_t end_ = 0;
};

// The key of an image a lane takes: 32 hex digits of SHA-256 over the lane's name, the image's
// name and its bytes. The same bytes under the same name in the same lane are the same image.
std::string image_key(std::string_view lane, std::string_view name,
                      std::span<const std::byte> bytes);

}  // namespace pv::station
