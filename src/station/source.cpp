#include "station/source.h"

#include <algorithm>

#include <patchvec/log.h>
#include <patchvec/store.h>
#include <patchvec/text.h>

namespace pv::station {

void Source::trigger() {
  throw ConflictError("the lane's source is " + describe() + ", not a software-triggered camera");
}

std::unique_ptr<Source> open_source(const Lane& lane) {
  if (lane.camera) return open_camera_source(*lane.camera, lane.name);
  if (lane.stream) return open_stream_source(*lane.stream, lane.name);
  if (lane.folder) return open_folder_source(*lane.folder);
  throw Error("lane " + lane.name + ": no source (a folder, a camera or a stream)");
}

void RetryShelf::put(Frame frame, std::chrono::milliseconds delay) {
  if (frames_.size() >= kFrames) {
    log::warn("lane " + lane_ + ": " + printable(frames_.front().second.name, 200) +
              " given up: too many frames wait to be tried again");
    frames_.pop_front();
  }
  frames_.emplace_back(std::chrono::steady_clock::now() + delay, std::move(frame));
}

std::optional<Frame> RetryShelf::due() {
  const auto now = std::chrono::steady_clock::now();
  const auto it = std::find_if(frames_.begin(), frames_.end(),
                               [&](const auto& entry) { return entry.first <= now; });
  if (it == frames_.end()) return std::nullopt;
  Frame frame = std::move(it->second);
  frames_.erase(it);
  return frame;
}

std::chrono::milliseconds RetryShelf::wait(std::chrono::milliseconds limit) const {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& entry : frames_) {
    limit = std::min(limit, std::chrono::ceil<std::chrono::milliseconds>(std::max(
                                entry.first - now, std::chrono::steady_clock::duration{})));
  }
  return limit;
}

void Backoff::failed() {
  next_ = std::chrono::steady_clock::now() + delay_;
  delay_ = std::min<std::chrono::seconds>(delay_ * 2, std::chrono::seconds(30));
}

}  // namespace pv::station
