// The journal's segments: JSON lines, appended with one write() and an fdatasync() each; a new
// segment file is made (and its folder synced) when the current one is full.
#include "station/journal.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/log.h>
#include <patchvec/text.h>

#include "util/sha256.h"

namespace pv::station {
namespace {

constexpr std::string_view kPrefix = "journal-";
constexpr std::string_view kSuffix = ".jsonl";

bool is_key(const std::string& key) {
  return key.size() == 32 && key.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string system_error(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

std::string segment_name(std::uint64_t first) {
  char name[40];
  std::snprintf(name, sizeof name, "journal-%012llu.jsonl", static_cast<unsigned long long>(first));
  return name;
}

// The first sequence number a segment's name states, or 0 for a name that is not a segment's.
std::uint64_t first_of(const std::string& name) {
  if (name.size() != kPrefix.size() + 12 + kSuffix.size() || !name.starts_with(kPrefix) ||
      !name.ends_with(kSuffix)) {
    return 0;
  }
  std::uint64_t first = 0;
  const char* digits = name.data() + kPrefix.size();
  const auto [end, problem] = std::from_chars(digits, digits + 12, first);
  return problem == std::errc() && end == digits + 12 ? first : 0;
}

std::string read_all(int fd, const std::filesystem::path& path) {
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    throw Error("journal " + path.string() + " is not a regular file");
  }
  std::string bytes(static_cast<std::size_t>(info.st_size), '\0');
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::pread(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(system_error("cannot read journal " + path.string()));
    done += static_cast<std::size_t>(n);
  }
  return bytes;
}

void sync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

ParsedJournal parse_journal(std::string_view bytes, const std::string& file,
                            std::uint64_t first_seq) {
  ParsedJournal out;
  std::size_t start = 0;
  while (start < bytes.size()) {
    const std::size_t end = bytes.find('\n', start);
    if (end == std::string_view::npos) break;  // torn: written in part before a crash
    const std::size_t line = out.keys.size() + 1;
    const std::uint64_t seq = first_seq + out.keys.size();
    const auto fail = [&](const std::string& why) {
      throw Error("journal " + file + ": line " + std::to_string(line) + " " + why +
                  " (the file was changed by something other than the station; move the lane's "
                  "journal away to start it afresh)");
    };
    if (end - start > kMaxRecordBytes) fail("is longer than a record can be");
    const auto record = nlohmann::json::parse(bytes.substr(start, end - start), nullptr, false);
    if (!record.is_object()) fail("is not a JSON object");
    const auto found = record.find("seq");
    if (found == record.end() || !found->is_number_unsigned() ||
        found->get<std::uint64_t>() != seq) {
      fail("does not carry \"seq\": " + std::to_string(seq));
    }
    const auto key = record.find("key");
    if (key == record.end() || !key->is_string() || !is_key(key->get<std::string>())) {
      fail("does not carry a \"key\" of 32 hex digits");
    }
    out.keys.push_back(key->get<std::string>());
    out.offsets.push_back(start);
    start = end + 1;
    out.valid_bytes = start;
  }
  return out;
}

Journal::Journal(std::filesystem::path dir, JournalOptions options)
    : dir_(std::move(dir)), options_(options) {
  std::vector<std::pair<std::uint64_t, std::filesystem::path>> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, error)) {
    const std::uint64_t first = first_of(entry.path().filename().string());
    if (first > 0) found.emplace_back(first, entry.path());
  }
  if (error) throw Error("journal " + dir_.string() + ": cannot list it: " + error.message());
  std::sort(found.begin(), found.end());
  try {
    for (std::size_t i = 0; i < found.size(); ++i) {
      const auto& [first, path] = found[i];
      const std::uint64_t expected = segments_.empty() ? first : first_ + entries_.size();
      if (first != expected) {
        throw Error("journal " + path.string() + " starts at record " + std::to_string(first) +
                    ", the segment before it ends at " + std::to_string(expected - 1) +
                    " (a segment is missing or was added)");
      }
      const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) throw Error(system_error("cannot open journal " + path.string()));
      segments_.push_back({first, path, fd});
      if (i == 0) first_ = first;
      const std::string bytes = read_all(fd, path);
      const ParsedJournal parsed = parse_journal(bytes, path.string(), first);
      const bool last = i + 1 == found.size();
      if (parsed.valid_bytes < bytes.size() && !last) {
        throw Error("journal " + path.string() + " ends in a record cut short, and it is not " +
                    "the last segment");
      }
      for (std::size_t r = 0; r < parsed.keys.size(); ++r) {
        if (!keys_.insert(parsed.keys[r]).second) {
          throw Error("journal " + path.string() + ": line " + std::to_string(r + 1) +
                      " records key " + parsed.keys[r] + " a second time");
        }
        entries_.push_back({parsed.offsets[r], {}});
      }
      end_ = parsed.valid_bytes;
      if (last && end_ < bytes.size()) {
        log::warn("journal " + path.string() + ": dropped " + std::to_string(bytes.size() - end_) +
                  " bytes of a record cut short (the station stopped while writing it; its " +
                  "image is inspected again)");
        if (::ftruncate(fd, static_cast<off_t>(end_)) != 0 || ::fdatasync(fd) != 0) {
          throw Error(system_error("cannot truncate journal " + path.string()));
        }
      }
    }
    if (segments_.empty()) open_segment(1);
  } catch (...) {
    for (const Segment& segment : segments_) ::close(segment.fd);
    throw;
  }
}

Journal::~Journal() {
  for (const Segment& segment : segments_) ::close(segment.fd);
}

void Journal::open_segment(std::uint64_t first) {
  const auto path = dir_ / segment_name(first);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(system_error("cannot create journal " + path.string()));
  sync_dir(dir_);  // the new name survives a crash
  segments_.push_back({first, path, fd});
  end_ = 0;
}

const Journal::Segment& Journal::segment_of(std::uint64_t seq) const {
  const auto after = std::upper_bound(
      segments_.begin(), segments_.end(), seq,
      [](std::uint64_t value, const Segment& segment) { return value < segment.first; });
  return *std::prev(after);
}

bool Journal::contains(const std::string& key) const {
  const std::lock_guard lock(mutex_);
  return keys_.contains(key);
}

std::uint64_t Journal::append(nlohmann::ordered_json record,
                              std::chrono::system_clock::time_point captured) {
  const auto key_field = record.find("key");
  const std::string key =
      key_field != record.end() && key_field->is_string() ? key_field->get<std::string>() : "";
  if (!is_key(key)) throw Error("journal " + dir_.string() + ": a record without a key");
  if (contains(key)) throw Error("journal " + dir_.string() + ": key " + key + " recorded already");
  if (end_ >= options_.segment_bytes) {
    const std::lock_guard lock(mutex_);
    open_segment(first_ + entries_.size());
  }
  std::uint64_t seq = 0;
  int fd = -1;
  {
    const std::lock_guard lock(mutex_);
    seq = first_ + entries_.size();
    fd = segments_.back().fd;
  }
  const std::uint64_t start = end_;
  // "seq" first, whatever the record's order: it is what a reader looks at first.
  nlohmann::ordered_json line{{"seq", seq}};
  for (auto& [name, value] : record.items()) {
    if (name != "seq") line[name] = std::move(value);
  }
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kMaxRecordBytes) {
    throw Error("journal " + dir_.string() + ": a record of " + std::to_string(text.size()) +
                " bytes");
  }
  text += '\n';
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n =
        ::pwrite(fd, text.data() + done, text.size() - done, static_cast<off_t>(start + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = system_error("cannot append to journal " + dir_.string());
      (void)::ftruncate(fd, static_cast<off_t>(start));
      throw Error(why);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd) != 0) {
    const std::string why = system_error("cannot sync journal " + dir_.string());
    (void)::ftruncate(fd, static_cast<off_t>(start));
    throw Error(why);
  }
  {
    const std::lock_guard lock(mutex_);
    keys_.insert(key);
    entries_.push_back({start, captured});
    end_ = start + text.size();
  }
  grown_.notify_all();
  return seq;
}

std::chrono::system_clock::time_point Journal::captured(std::uint64_t seq) const {
  const std::lock_guard lock(mutex_);
  if (seq < first_ || seq >= first_ + entries_.size()) return {};
  return entries_[seq - first_].captured;
}

std::uint64_t Journal::size() const {
  const std::lock_guard lock(mutex_);
  return first_ + entries_.size() - 1;
}

std::uint64_t Journal::first() const {
  const std::lock_guard lock(mutex_);
  return first_;
}

std::size_t Journal::segments() const {
  const std::lock_guard lock(mutex_);
  return segments_.size();
}

std::string Journal::read(std::uint64_t seq) const {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  int fd = -1;
  std::filesystem::path path;
  {
    const std::lock_guard lock(mutex_);
    if (seq < first_ || seq >= first_ + entries_.size()) {
      throw Error("journal " + dir_.string() + ": no record " + std::to_string(seq));
    }
    const Segment& segment = segment_of(seq);
    start = entries_[seq - first_].offset;
    const bool last_of_segment =
        seq + 1 == first_ + entries_.size() || segment_of(seq + 1).first != segment.first;
    if (!last_of_segment) {
      end = entries_[seq + 1 - first_].offset;
    } else if (&segment == &segments_.back()) {
      end = end_;
    } else {
      struct stat info {};
      end = ::fstat(segment.fd, &info) == 0 ? static_cast<std::uint64_t>(info.st_size) : start;
    }
    fd = segment.fd;
    path = segment.path;
  }
  std::string line(static_cast<std::size_t>(end - start), '\0');
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n =
        ::pread(fd, line.data() + done, line.size() - done, static_cast<off_t>(start + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(system_error("cannot read journal " + path.string()));
    done += static_cast<std::size_t>(n);
  }
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

std::uint64_t Journal::wait_beyond(std::uint64_t seq, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  grown_.wait_for(lock, timeout, [&] { return first_ + entries_.size() - 1 > seq; });
  return first_ + entries_.size() - 1;
}

std::uint64_t Journal::trim(std::uint64_t delivered, std::filesystem::file_time_type older_than) {
  std::uint64_t dropped = 0;
  for (;;) {
    Segment oldest;
    std::uint64_t next_first = 0;
    {
      const std::lock_guard lock(mutex_);
      if (segments_.size() < 2) break;
      oldest = segments_.front();
      next_first = segments_[1].first;
    }
    std::error_code error;
    const auto written = std::filesystem::last_write_time(oldest.path, error);
    if (next_first - 1 > delivered || error || written >= older_than) break;
    // Its keys are forgotten: read them back (trimming is rare; the keys are not kept twice).
    const std::string bytes = read_all(oldest.fd, oldest.path);
    const ParsedJournal parsed = parse_journal(bytes, oldest.path.string(), oldest.first);
    {
      const std::lock_guard lock(mutex_);
      for (const std::string& key : parsed.keys) keys_.erase(key);
      const std::uint64_t count = next_first - oldest.first;
      entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(count));
      first_ = next_first;
      segments_.erase(segments_.begin());
      dropped += count;
    }
    ::close(oldest.fd);
    std::filesystem::remove(oldest.path, error);
    log::info("journal " + oldest.path.string() + ": deleted (every sink had delivered it)");
  }
  return dropped;
}

std::string image_key(std::string_view lane, std::string_view name,
                      std::span<const std::byte> bytes) {
  Sha256 hash;
  const auto text = [&](std::string_view part) {
    hash.update(std::as_bytes(std::span(part.data(), part.size())));
    const std::byte separator{0};
    hash.update(std::span(&separator, 1));
  };
  text(lane);
  text(name);
  hash.update(bytes);
  return hash.hex().substr(0, 32);
}

}  // namespace pv::station
