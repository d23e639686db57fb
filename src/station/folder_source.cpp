// The hot folder as a lane's source: the file's bytes read once, its name, and when it was
// written.
#include <sys/stat.h>

#include <patchvec/error.h>
#include <patchvec/files.h>

#include "station/hot_folder.h"
#include "station/source.h"

namespace pv::station {
namespace {

std::chrono::system_clock::time_point modified(const std::filesystem::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return std::chrono::system_clock::now();
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(info.st_mtim.tv_sec) +
          std::chrono::nanoseconds(info.st_mtim.tv_nsec)));
}

class FolderFrames final : public Source {
 public:
  explicit FolderFrames(const FolderSource& source) : source_(source), folder_(source) {}

  std::optional<Frame> next(std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      const auto name = folder_.next(std::max(left, std::chrono::milliseconds(0)));
      if (!name) return std::nullopt;
      const auto path = folder_.dir() / *name;
      Frame frame{.name = *name,
                  .origin = path.string(),
                  .bytes = {},
                  .captured = modified(path),
                  .failure = {}};
      try {
        frame.bytes = read_file(path, source_.max_file_bytes);
      } catch (const Error& e) {
        std::error_code error;
        if (!std::filesystem::exists(std::filesystem::symlink_status(path, error))) {
          continue;  // gone before it was read: nothing to record
        }
        frame.failure = e.what();
      }
      return frame;
    }
  }

  void retry_later(Frame frame, std::chrono::milliseconds delay) override {
    folder_.retry_later(frame.name, delay);  // read again then: the file stays in the folder
  }

  std::filesystem::path destination(const Frame& frame, bool failed) const override {
    return folder_.destination(frame.name, failed);
  }

  void finish(const Frame& frame, const std::filesystem::path& destination, bool failed,
              const std::string& reason) override {
    folder_.finish(frame.name, destination, failed, reason);
  }

  std::string describe() const override { return "folder " + source_.dir.string(); }
  SourceStatus status() const override { return {}; }

 private:
  const FolderSource source_;
  HotFolder folder_;
};

}  // namespace

std::unique_ptr<Source> open_folder_source(const FolderSource& folder) {
  return std::make_unique<FolderFrames>(folder);
}

}  // namespace pv::station
