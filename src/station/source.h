// Where a lane's images come from: one interface, an implementation per kind of source (a hot
// folder, a GenICam camera, a video stream). A lane takes frames one at a time, records each
// result, and then tells the source it is done with the frame.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <patchvec/station.h>

namespace pv::station {

// One image as a source hands it over.
struct Frame {
  std::string name;              // a file's name; "frame-000042.png" for cameras and streams
  std::string origin;            // what reports and messages call it: a file's path, the camera
  std::vector<std::byte> bytes;  // encoded: a file as it is, PNG for cameras and streams
  std::chrono::system_clock::time_point captured;  // written, or received from the camera
  std::string failure;  // why the bytes could not be read (a file); then `bytes` is empty
  // Only in memory (a camera's or stream's frame): its key includes its capture time, as frame
  // numbers start again with a camera and a still scene sends the same bytes again. A file's key
  // is its name and bytes, so that it is recognised after a restart.
  bool live = false;
};

// What a source reports besides its frames.
struct SourceStatus {
  bool connected = true;
  std::string error;  // why it is not connected
  std::uint64_t reconnects = 0;
  std::uint64_t dropped = 0;
};

// Thread-safety: next(), retry_later(), destination() and finish() from the lane's thread;
// status(), describe() and trigger() from any thread.
class Source {
 public:
  virtual ~Source() = default;

  // The next frame, waiting up to `timeout` (and never much longer) for one.
  virtual std::optional<Frame> next(std::chrono::milliseconds timeout) = 0;
  // `frame` again from next() after `delay`: it could not be inspected now, for a reason not its
  // own. A live source keeps a few such frames and gives up older ones (logged).
  virtual void retry_later(Frame frame, std::chrono::milliseconds delay) = 0;
  // Where finish() will put the frame: a folder's done/ or failed/ file; empty for live sources.
  virtual std::filesystem::path destination(const Frame& frame, bool failed) const = 0;
  // Done with `frame` (its result is recorded): a folder moves the file. Throws pv::Error.
  virtual void finish(const Frame& frame, const std::filesystem::path& destination, bool failed,
                      const std::string& reason) = 0;
  virtual std::string describe() const = 0;  // "folder /srv/in", "camera Basler-40012345", ...
  virtual SourceStatus status() const = 0;
  // A software trigger; throws ConflictError when this source cannot take one now.
  virtual void trigger();
};

// The lane's source, opened (a camera or stream that is not there yet is not an error: it is
// connected later). Throws pv::Error naming the source for a folder that cannot be watched.
std::unique_ptr<Source> open_source(const Lane& lane);

std::unique_ptr<Source> open_folder_source(const FolderSource& folder);
std::unique_ptr<Source> open_camera_source(const CameraSource& camera, const std::string& lane);
std::unique_ptr<Source> open_stream_source(const StreamSource& stream, const std::string& lane);

// The frames a live source keeps for retry_later(): a few, the oldest given up beyond that.
// Thread-safety: one thread at a time.
class RetryShelf {
 public:
  explicit RetryShelf(std::string lane) : lane_(std::move(lane)) {}
  void put(Frame frame, std::chrono::milliseconds delay);
  std::optional<Frame> due();  // a frame whose delay has passed
  // How long until the next frame is due (`limit` when none is).
  std::chrono::milliseconds wait(std::chrono::milliseconds limit) const;

 private:
  static constexpr std::size_t kFrames = 8;
  std::string lane_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, Frame>> frames_;
};

// A backoff for reconnecting: 1 s doubling to 30 s, reset by a success.
class Backoff {
 public:
  bool due() const { return std::chrono::steady_clock::now() >= next_; }
  void failed();
  void succeeded() { delay_ = std::chrono::seconds(1); }

 private:
  std::chrono::seconds delay_{1};
  std::chrono::steady_clock::time_point next_{};
};

}  // namespace pv::station
