// The hot-folder source: which files of a folder are complete and not taken yet, by inotify
// (closed after writing, or renamed in) and by listing the folder at the start and after the
// kernel's event queue overflowed.
#pragma once

#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <patchvec/station.h>

namespace pv::station {

// Thread-safety: one thread at a time.
class HotFolder {
 public:
  // Watches `source.dir` (which must exist), then lists the files already there, oldest first.
  // Throws pv::Error naming the folder.
  explicit HotFolder(const FolderSource& source);
  ~HotFolder();
  HotFolder(const HotFolder&) = delete;
  HotFolder& operator=(const HotFolder&) = delete;

  // The name of the next complete file, waiting up to `timeout` for one. A file some process
  // still has open for writing is not returned (its close brings it back).
  std::optional<std::string> next(std::chrono::milliseconds timeout);
  // `name` again after `delay` (a file that could not be inspected now).
  void retry_later(const std::string& name, std::chrono::milliseconds delay);
  // Where finish() puts `name`: <dir>/done/<name> (or failed/), with ".<n>" before the
  // extension when that name is taken; the file itself for kKeep, empty for kDelete (a failed
  // file goes to failed/ then too).
  std::filesystem::path destination(const std::string& name, bool failed) const;
  // Carries out FolderSource::after for `name`, to `destination` (from destination()); a failed
  // file gets <destination>.reason with `reason`. Throws pv::Error naming the file.
  void finish(const std::string& name, const std::filesystem::path& destination, bool failed,
              const std::string& reason);
  const std::filesystem::path& dir() const { return source_.dir; }

 private:
  void read_events();
  void list_folder();
  void add(const std::string& name);

  FolderSource source_;
  int inotify_ = -1;
  std::deque<std::string> pending_;
  std::set<std::string> queued_;  // what pending_ holds
  std::multimap<std::chrono::steady_clock::time_point, std::string> later_;
};

// True for names the folder never takes: hidden (".name"), "*.part", "*.tmp", "*.reason".
bool ignored_name(const std::string& name);

}  // namespace pv::station
