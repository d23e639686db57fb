// A video stream (RTSP, HTTP MJPEG) or file through OpenCV's FFmpeg backend as a lane's source. A
// thread of its own reads the stream as fast as it comes, so that a live stream never backs up in
// the network or the decoder; the lane takes the frames it kept.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include <patchvec/error.h>
#include <patchvec/log.h>
#include <patchvec/text.h>

#include "station/frame_png.h"
#include "station/source.h"

namespace pv::station {
namespace {

constexpr int kNetworkTimeoutMs = 3000;  // to open a stream, and for each read

class StreamFrames final : public Source {
 public:
  StreamFrames(const StreamSource& options, std::string lane)
      : options_(options), lane_(std::move(lane)), shelf_(lane_) {
    if (options_.is_file()) {
      std::error_code error;
      if (!std::filesystem::is_regular_file(options_.url, error)) {
        throw Error("stream " + options_.url + ": no such video file");
      }
    }
    reader_ = std::thread([this] { read(); });
  }

  ~StreamFrames() override {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    reader_.join();
  }
  StreamFrames(const StreamFrames&) = delete;
  StreamFrames& operator=(const StreamFrames&) = delete;

  std::optional<Frame> next(std::chrono::milliseconds timeout) override {
    if (auto frame = shelf_.due()) return frame;
    Taken taken;
    {
      std::unique_lock lock(mutex_);
      if (!changed_.wait_for(lock, shelf_.wait(timeout), [&] { return !queue_.empty(); })) {
        return std::nullopt;
      }
      taken = std::move(queue_.front());
      queue_.pop_front();
    }
    changed_.notify_all();  // a file's reader waits for room
    char name[48];
    std::snprintf(name, sizeof name, "frame-%06llu.png",
                  static_cast<unsigned long long>(taken.index));
    Frame frame{.name = name,
                .origin = describe() + " " + name,
                .bytes = {},
                .captured = taken.captured,
                .failure = {},
                .live = true};
    const cv::Mat& image = taken.image;
    try {
      const auto layout = image.type() == CV_8UC1 ? PixelLayout::kMono8 : PixelLayout::kBgr8;
      frame.bytes = frame_png(
          std::span(reinterpret_cast<const std::byte*>(image.data), image.step[0] * image.rows),
          image.cols, image.rows, image.step[0], layout);
    } catch (const Error& e) {
      frame.failure = e.what();
    }
    return frame;
  }

  void retry_later(Frame frame, std::chrono::milliseconds delay) override {
    shelf_.put(std::move(frame), delay);
  }
  std::filesystem::path destination(const Frame&, bool) const override { return {}; }
  void finish(const Frame&, const std::filesystem::path&, bool, const std::string&) override {}

  std::string describe() const override { return "stream " + printable(options_.url, 300); }

  SourceStatus status() const override {
    const std::lock_guard lock(mutex_);
    return {
        .connected = connected_, .error = error_, .reconnects = reconnects_, .dropped = dropped_};
  }

 private:
  struct Taken {
    cv::Mat image;
    std::uint64_t index = 0;  // the frame's number in the stream since it was opened, from 1
    std::chrono::system_clock::time_point captured;
  };

  void set_state(bool connected, const std::string& error) {
    const std::lock_guard lock(mutex_);
    connected_ = connected;
    if (!error.empty() && error != error_) log::warn("lane " + lane_ + ": " + error);
    error_ = error;
  }

  // Waits up to `duration` unless the source stops; false once it stops.
  bool pause(std::chrono::milliseconds duration) {
    std::unique_lock lock(mutex_);
    return !changed_.wait_for(lock, duration, [&] { return stopping_; });
  }

  bool stopping() const {
    const std::lock_guard lock(mutex_);
    return stopping_;
  }

  void read() {
    Backoff backoff;
    cv::VideoCapture capture;
    std::uint64_t index = 0;
    double due_ms = 0;  // max_fps: when the next frame is due, by the stream's clock
    auto opened_at = std::chrono::steady_clock::now();
    while (!stopping()) {
      if (!capture.isOpened()) {
        if (!backoff.due()) {
          if (!pause(std::chrono::milliseconds(100))) return;
          continue;
        }
        const bool opened = capture.open(options_.url, cv::CAP_FFMPEG,
                                         {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, kNetworkTimeoutMs,
                                          cv::CAP_PROP_READ_TIMEOUT_MSEC, kNetworkTimeoutMs});
        if (!opened) {
          backoff.failed();
          set_state(false, describe() + ": cannot open it (trying again)");
          continue;
        }
        backoff.succeeded();
        index = 0;
        due_ms = 0;
        opened_at = std::chrono::steady_clock::now();
        set_state(true, "");
        log::info("lane " + lane_ + ": " + describe() + " opened");
      }
      cv::Mat image;
      if (!capture.read(image) || image.empty()) {
        capture.release();
        if (options_.is_file()) {
          set_state(false, "");
          log::info("lane " + lane_ + ": " + describe() + ": the end, after " +
                    std::to_string(index) + " frames");
          return;
        }
        {
          const std::lock_guard lock(mutex_);
          ++reconnects_;
        }
        backoff.failed();
        set_state(false, describe() + ": the stream ended or stalled (trying again)");
        continue;
      }
      ++index;
      if ((index - 1) % static_cast<std::uint64_t>(options_.every_nth) != 0) continue;
      if (options_.max_fps > 0) {
        // By the stream's own clock, so that a file gives the same frames however fast it is read.
        // Due times a period apart (not a period after the last frame taken, which would round
        // 10 frames a second at max_fps 4 down to every third frame); never behind the stream
        // after a gap, so a gap brings no burst.
        // MJPEG over HTTP has no timestamps (FFmpeg says AV_NOPTS_VALUE): this host's clock then.
        double at_ms = capture.get(cv::CAP_PROP_POS_MSEC);
        if (!std::isfinite(at_ms) || at_ms < 0) {
          at_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                            opened_at)
                      .count();
        }
        if (at_ms < due_ms - 1e-6) continue;
        due_ms = std::max(due_ms + 1000.0 / options_.max_fps, at_ms);
      }
      if (image.type() != CV_8UC3 && image.type() != CV_8UC1) {
        set_state(true, describe() + ": frames of OpenCV type " + std::to_string(image.type()) +
                            " are not taken");
        continue;
      }
      Taken taken{
          .image = std::move(image), .index = index, .captured = std::chrono::system_clock::now()};
      std::unique_lock lock(mutex_);
      const auto room = static_cast<std::size_t>(options_.queue);
      if (options_.is_file()) {
        changed_.wait(lock, [&] { return stopping_ || queue_.size() < room; });
        if (stopping_) return;
      } else if (queue_.size() >= room) {
        queue_.pop_front();
        ++dropped_;
      }
      queue_.push_back(std::move(taken));
      lock.unlock();
      changed_.notify_all();
    }
  }

  const StreamSource options_;
  const std::string lane_;
  RetryShelf shelf_;  // the lane's thread only
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Taken> queue_;
  bool stopping_ = false;
  bool connected_ = false;
  std::string error_;
  std::uint64_t reconnects_ = 0;
  std::uint64_t dropped_ = 0;
  std::thread reader_;  // last: it starts when everything else is ready
};

}  // namespace

std::unique_ptr<Source> open_stream_source(const StreamSource& stream, const std::string& lane) {
  return std::make_unique<StreamFrames>(stream, lane);
}

}  // namespace pv::station
