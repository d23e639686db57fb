// inotify's IN_CLOSE_WRITE and IN_MOVED_TO say a file is complete; a file listed at the start
// (or after an overflow) may still be being written, which a read lease tells: the kernel grants
// one only while no process has the file open for writing.
#include "station/hot_folder.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/log.h>
#include <patchvec/text.h>

namespace pv::station {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

enum class Completeness { kComplete, kBeingWritten, kGone };

// Whether a process has `path` open for writing. A lease-break signal would only come while the
// lease is held (a few instructions here); SIGIO is ignored so that one can never end the program.
Completeness completeness(const std::filesystem::path& path) {
  static const bool ignoring = [] {
    std::signal(SIGIO, SIG_IGN);
    return true;
  }();
  (void)ignoring;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) return Completeness::kGone;
  Completeness result = Completeness::kComplete;
  if (::fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
    ::fcntl(fd, F_SETLEASE, F_UNLCK);
  } else if (errno == EAGAIN || errno == EBUSY) {
    result = Completeness::kBeingWritten;
  }
  // EACCES (another user's file, no CAP_LEASE): no way to tell; inotify's close event is what
  // such a station relies on.
  ::close(fd);
  return result;
}

}  // namespace

bool ignored_name(const std::string& name) {
  return name.empty() || name[0] == '.' || ends_with(name, ".part") || ends_with(name, ".tmp") ||
         ends_with(name, ".reason");
}

HotFolder::HotFolder(const FolderSource& source) : source_(source) {
  inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_ < 0)
    throw Error("folder " + source_.dir.string() + ": inotify: " + std::strerror(errno));
  if (::inotify_add_watch(inotify_, source_.dir.c_str(),
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR) < 0) {
    const std::string why = std::strerror(errno);
    ::close(inotify_);
    throw Error("folder " + source_.dir.string() + ": cannot watch it: " + why);
  }
  list_folder();
}

HotFolder::~HotFolder() {
  if (inotify_ >= 0) ::close(inotify_);
}

void HotFolder::add(const std::string& name) {
  if (ignored_name(name) || queued_.contains(name)) return;
  queued_.insert(name);
  pending_.push_back(name);
}

void HotFolder::list_folder() {
  std::vector<std::pair<std::filesystem::file_time_type, std::string>> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(source_.dir, error)) {
    std::error_code entry_error;
    if (!entry.is_regular_file(entry_error)) continue;
    files.emplace_back(entry.last_write_time(entry_error), entry.path().filename().string());
  }
  if (error) log::warn("folder " + source_.dir.string() + ": cannot list it: " + error.message());
  std::sort(files.begin(), files.end());
  for (const auto& file : files) add(file.second);
}

void HotFolder::read_events() {
  alignas(inotify_event) char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(inotify_, buffer, sizeof buffer);
    if (n <= 0) return;
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      if ((event->mask & IN_Q_OVERFLOW) != 0) {
        log::warn("folder " + source_.dir.string() + ": too many events at once; listing it");
        list_folder();
      } else if (event->len > 0 && (event->mask & IN_ISDIR) == 0) {
        add(std::string(event->name, ::strnlen(event->name, event->len)));
      }
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
}

void HotFolder::retry_later(const std::string& name, std::chrono::milliseconds delay) {
  later_.emplace(std::chrono::steady_clock::now() + delay, name);
}

std::optional<std::string> HotFolder::next(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    read_events();
    const auto now = std::chrono::steady_clock::now();
    while (!later_.empty() && later_.begin()->first <= now) {
      add(later_.begin()->second);
      later_.erase(later_.begin());
    }
    while (!pending_.empty()) {
      const std::string name = pending_.front();
      pending_.pop_front();
      queued_.erase(name);
      const auto path = source_.dir / name;
      std::error_code error;
      if (!std::filesystem::is_regular_file(std::filesystem::symlink_status(path, error))) continue;
      if (completeness(path) != Completeness::kComplete) continue;  // its close brings it back
      return name;
    }
    if (now >= deadline) return std::nullopt;
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    if (!later_.empty()) {
      wait = std::min(
          wait, std::chrono::duration_cast<std::chrono::milliseconds>(later_.begin()->first - now) +
                    std::chrono::milliseconds(1));
    }
    pollfd fd{.fd = inotify_, .events = POLLIN, .revents = 0};
    ::poll(&fd, 1, static_cast<int>(std::max<std::int64_t>(wait.count(), 0)));
  }
}

std::filesystem::path HotFolder::destination(const std::string& name, bool failed) const {
  // A file that was no image goes to failed/ unless it is kept: deleting it would lose what
  // someone needs to find out why.
  if (source_.after == AfterInspection::kKeep) return source_.dir / name;
  if (source_.after == AfterInspection::kDelete && !failed) return {};
  const auto folder = source_.dir / (failed ? "failed" : "done");
  std::filesystem::path plain = folder / name;
  std::error_code error;
  if (!std::filesystem::exists(std::filesystem::symlink_status(plain, error))) return plain;
  const auto stem = plain.stem().string();
  const auto extension = plain.extension().string();
  for (int n = 2;; ++n) {
    auto candidate = folder / (stem + "." + std::to_string(n) + extension);
    if (!std::filesystem::exists(std::filesystem::symlink_status(candidate, error))) {
      return candidate;
    }
  }
}

void HotFolder::finish(const std::string& name, const std::filesystem::path& destination,
                       bool failed, const std::string& reason) {
  const auto path = source_.dir / name;
  std::error_code error;
  const AfterInspection after =
      failed && source_.after == AfterInspection::kDelete ? AfterInspection::kMove : source_.after;
  switch (after) {
    case AfterInspection::kKeep:
      break;
    case AfterInspection::kDelete:
      std::filesystem::remove(path, error);
      if (error) throw Error("folder: cannot delete " + path.string() + ": " + error.message());
      break;
    case AfterInspection::kMove:
      std::filesystem::create_directories(destination.parent_path(), error);
      if (failed) {
        AtomicFile why(destination.string() + ".reason");
        why.write(reason + "\n");
        why.commit();
      }
      // Never over a file that is there: what a user put in done/ stays.
      if (::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, destination.c_str(), RENAME_NOREPLACE) !=
          0) {
        throw Error("folder: cannot move " + path.string() + " to " + destination.string() + ": " +
                    std::strerror(errno));
      }
      break;
  }
}

}  // namespace pv::station
