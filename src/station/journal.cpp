// The journal file: JSON lines, appended with one write() and an fdatasync() each.
#include "station/journal.h"

#include <cerrno>
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

bool is_key(const std::string& key) {
  return key.size() == 32 && key.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string system_error(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

}  // namespace

ParsedJournal parse_journal(std::string_view bytes, const std::string& file) {
  ParsedJournal out;
  std::size_t start = 0;
  while (start < bytes.size()) {
    const std::size_t end = bytes.find('\n', start);
    if (end == std::string_view::npos) break;  // torn: written in part before a crash
    const std::size_t line = out.keys.size() + 1;
    const auto fail = [&](const std::string& why) {
      throw Error("journal " + file + ": line " + std::to_string(line) + " " + why +
                  " (the file was changed by something other than the station; move it away "
                  "to start this lane afresh)");
    };
    if (end - start > kMaxRecordBytes) fail("is longer than a record can be");
    const auto record = nlohmann::json::parse(bytes.substr(start, end - start), nullptr, false);
    if (!record.is_object()) fail("is not a JSON object");
    const auto seq = record.find("seq");
    if (seq == record.end() || !seq->is_number_unsigned() || seq->get<std::uint64_t>() != line) {
      fail("does not carry \"seq\": " + std::to_string(line));
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

Journal::Journal(std::filesystem::path file) : file_(std::move(file)) {
  fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(system_error("cannot open journal " + file_.string()));
  try {
    struct stat info {};
    if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
      throw Error("journal " + file_.string() + " is not a regular file");
    }
    std::string bytes(static_cast<std::size_t>(info.st_size), '\0');
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n =
          ::pread(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (n <= 0) throw Error(system_error("cannot read journal " + file_.string()));
      done += static_cast<std::size_t>(n);
    }
    ParsedJournal parsed = parse_journal(bytes, file_.string());
    for (std::size_t i = 0; i < parsed.keys.size(); ++i) {
      if (!keys_.insert(parsed.keys[i]).second) {
        throw Error("journal " + file_.string() + ": line " + std::to_string(i + 1) +
                    " records key " + parsed.keys[i] + " a second time");
      }
    }
    offsets_ = std::move(parsed.offsets);
    end_ = parsed.valid_bytes;
    if (end_ < bytes.size()) {
      log::warn("journal " + file_.string() + ": dropped " + std::to_string(bytes.size() - end_) +
                " bytes of a record cut short (the station stopped while writing it; its image "
                "is inspected again)");
      if (::ftruncate(fd_, static_cast<off_t>(end_)) != 0 || ::fdatasync(fd_) != 0) {
        throw Error(system_error("cannot truncate journal " + file_.string()));
      }
    }
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

bool Journal::contains(const std::string& key) const {
  const std::lock_guard lock(mutex_);
  return keys_.contains(key);
}

std::uint64_t Journal::append(nlohmann::ordered_json record,
                              std::chrono::system_clock::time_point captured) {
  std::uint64_t seq = 0;
  std::uint64_t start = 0;
  {
    const std::lock_guard lock(mutex_);
    seq = offsets_.size() + 1;
    start = end_;
  }
  const auto key_field = record.find("key");
  const std::string key =
      key_field != record.end() && key_field->is_string() ? key_field->get<std::string>() : "";
  if (!is_key(key)) throw Error("journal " + file_.string() + ": a record without a key");
  if (contains(key))
    throw Error("journal " + file_.string() + ": key " + key + " recorded already");
  // "seq" first, whatever the record's order: it is what a reader looks at first.
  nlohmann::ordered_json line{{"seq", seq}};
  for (auto& [name, value] : record.items()) {
    if (name != "seq") line[name] = std::move(value);
  }
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kMaxRecordBytes) {
    throw Error("journal " + file_.string() + ": a record of " + std::to_string(text.size()) +
                " bytes");
  }
  text += '\n';
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n =
        ::pwrite(fd_, text.data() + done, text.size() - done, static_cast<off_t>(start + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = system_error("cannot append to journal " + file_.string());
      (void)::ftruncate(fd_, static_cast<off_t>(start));
      throw Error(why);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd_) != 0) {
    const std::string why = system_error("cannot sync journal " + file_.string());
    (void)::ftruncate(fd_, static_cast<off_t>(start));
    throw Error(why);
  }
  {
    const std::lock_guard lock(mutex_);
    keys_.insert(key);
    offsets_.push_back(start);
    captured_.resize(offsets_.size() - 1);
    captured_.push_back(captured);
    end_ = start + text.size();
  }
  grown_.notify_all();
  return seq;
}

std::chrono::system_clock::time_point Journal::captured(std::uint64_t seq) const {
  const std::lock_guard lock(mutex_);
  return seq >= 1 && seq <= captured_.size() ? captured_[seq - 1]
                                             : std::chrono::system_clock::time_point{};
}

std::uint64_t Journal::size() const {
  const std::lock_guard lock(mutex_);
  return offsets_.size();
}

std::string Journal::read(std::uint64_t seq) const {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  {
    const std::lock_guard lock(mutex_);
    if (seq == 0 || seq > offsets_.size()) {
      throw Error("journal " + file_.string() + ": no record " + std::to_string(seq));
    }
    start = offsets_[seq - 1];
    end = seq < offsets_.size() ? offsets_[seq] : end_;
  }
  std::string line(static_cast<std::size_t>(end - start), '\0');
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n =
        ::pread(fd_, line.data() + done, line.size() - done, static_cast<off_t>(start + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(system_error("cannot read journal " + file_.string()));
    done += static_cast<std::size_t>(n);
  }
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

std::uint64_t Journal::wait_beyond(std::uint64_t seq, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  grown_.wait_for(lock, timeout, [&] { return offsets_.size() > seq; });
  return offsets_.size();
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
