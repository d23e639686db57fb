// A lane's journal: every result the lane records, one JSON object per line, appended and
// fsync'd before anything else happens to the image. It is the ledger (an image whose key it
// holds is never inspected again, across restarts and kill -9) and every sink's outbox (a sink
// delivers the records after its position, position.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
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

// What a journal segment's bytes hold: the complete records and how many bytes they take. A last
// line without its newline (a write cut short by a crash) is not part of it; any other line that
// is not a record with {"seq": `first_seq` + its index, "key": 32 hex digits} throws pv::Error
// naming `file` and the line.
struct ParsedJournal {
  std::vector<std::string> keys;       // in sequence order; keys[i] is record first_seq + i's
  std::vector<std::uint64_t> offsets;  // where each record's line starts
  std::uint64_t valid_bytes = 0;
};
ParsedJournal parse_journal(std::string_view bytes, const std::string& file,
                            std::uint64_t first_seq = 1);

struct JournalOptions {
  // A new segment is started once the current one is this large (about 130,000 results).
  std::uint64_t segment_bytes = 64 << 20;
};

// A lane's journal, in segments <dir>/journal-<first sequence number, 12 digits>.jsonl, so that
// a station that runs for months holds neither its whole history on disk nor every key in memory:
// trim() deletes the segments every sink has delivered once they are old enough. The keys of the
// segments kept are the ledger's memory: an image recorded in a deleted segment would be taken as
// new, which is why a hot folder moves its files out (docs/station.md).
// Thread-safety: append() and trim() from one thread at a time; everything else from any thread.
class Journal {
 public:
  // Opens (creating) the segments of `dir` (which must exist), drops a torn last line of the last
  // one (logged), and holds every key in memory. Throws pv::Error naming the file at fault.
  explicit Journal(std::filesystem::path dir, JournalOptions options = {});
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
  std::uint64_t size() const;   // the last sequence number (0: none yet)
  std::uint64_t first() const;  // the first sequence number still held (size() + 1: none)
  // The line of record `seq` (first() <= seq <= size()), without its newline.
  std::string read(std::uint64_t seq) const;
  // Waits until size() > `seq` or `timeout` passes; returns size().
  std::uint64_t wait_beyond(std::uint64_t seq, std::chrono::milliseconds timeout) const;
  // Deletes the segments, never the current one, whose records are all <= `delivered` and that
  // were last written before `older_than`; forgets their keys. Returns how many records went.
  std::uint64_t trim(std::uint64_t delivered, std::filesystem::file_time_type older_than);
  const std::filesystem::path& dir() const { return dir_; }
  std::size_t segments() const;

 private:
  struct Segment {
    std::uint64_t first = 0;  // its first record's sequence number
    std::filesystem::path path;
    int fd = -1;
  };
  struct Entry {
    std::uint64_t offset = 0;  // in its segment
    std::chrono::system_clock::time_point captured;
  };
  void open_segment(std::uint64_t first);
  const Segment& segment_of(std::uint64_t seq) const;  // with mutex_ held

  std::filesystem::path dir_;
  JournalOptions options_;
  mutable std::mutex mutex_;
  mutable std::condition_variable grown_;
  std::vector<Segment> segments_;  // by first; the last is the one appended to
  std::unordered_set<std::string> keys_;
  std::deque<Entry> entries_;  // records first_ .. size(), in order
  std::uint64_t first_ = 1;
  std::uint64_t end_ = 0;  // bytes in the current segment
};

// The key of an image a lane takes: 32 hex digits of SHA-256 over the lane's name, the image's
// name and its bytes. The same bytes under the same name in the same lane are the same image.
std::string image_key(std::string_view lane, std::string_view name,
                      std::span<const std::byte> bytes);

}  // namespace pv::station
