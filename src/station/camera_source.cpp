// A GenICam camera through Aravis as a lane's source. Aravis receives frames on its own thread into
// the buffers given to it; the lane pops them one at a time, so a lane that falls behind makes the
// camera's next frames find no buffer (Aravis counts them: dropped). The camera is opened, set up
// and reconnected on the lane's thread; a software trigger may come from any thread.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include <arpa/inet.h>
#include <arv.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/log.h>
#include <patchvec/store.h>
#include <patchvec/text.h>

#include "station/frame_png.h"
#include "station/source.h"

namespace pv::station {
namespace {

// The receiving thread's nice level (below the inspection's 0).
constexpr int kReceiveNice = -10;

// A GError's message, freed; `what` when there is none.
std::string take_error(GError*& error, const std::string& what) {
  std::string message = what;
  if (error != nullptr) {
    message += ": " + printable(error->message != nullptr ? error->message : "", 300);
    g_clear_error(&error);
  }
  return message;
}

// Aravis's receiving thread, at its start: raised above the inspection's threads (nice -10) so that
// a frame's packets are taken in while the backbone keeps every core busy; without the right to do
// so (CAP_SYS_NICE or RLIMIT_NICE), one warning, and frames may be lost on a saturated CPU.
void on_stream_thread(void*, ArvStreamCallbackType type, ArvBuffer*) {
  if (type != ARV_STREAM_CALLBACK_TYPE_INIT) return;
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kReceiveNice) != 0) {
    static std::once_flag warned;
    std::call_once(warned, [] {
      log::warn(std::string("camera frames are received at normal priority (nice ") +
                std::to_string(kReceiveNice) + " refused: " + std::strerror(errno) +
                "); on a saturated CPU a frame may be lost: allow it (systemd's LimitNICE=-10, "
                "or CAP_SYS_NICE; docs/station.md)");
    });
  }
}

class CameraFrames final : public Source {
 public:
  CameraFrames(const CameraSource& options, std::string lane)
      : options_(options), lane_(std::move(lane)), shelf_(lane_) {
    if (options_.id.starts_with("Fake")) {
      static std::once_flag fake;
      std::call_once(fake, [] { arv_enable_interface("Fake"); });
    }
    // A camera not there yet is not an error: it is looked for again with the backoff.
    connect();
  }

  ~CameraFrames() override {
    const std::lock_guard lock(control_);
    disconnect_locked();
  }
  CameraFrames(const CameraFrames&) = delete;
  CameraFrames& operator=(const CameraFrames&) = delete;

  std::optional<Frame> next(std::chrono::milliseconds timeout) override {
    if (auto frame = shelf_.due()) return frame;
    const auto deadline = std::chrono::steady_clock::now() + shelf_.wait(timeout);
    if (lost_.exchange(false)) {
      const std::lock_guard lock(control_);
      if (camera_ != nullptr) {
        fail_locked("the connection to the camera was lost", /*reachable=*/false);
        const std::lock_guard state(state_);
        ++reconnects_;
      }
    }
    if (stream_ == nullptr) {
      if (backoff_.due()) connect();
      if (stream_ == nullptr) {
        std::this_thread::sleep_until(
            std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
        return std::nullopt;
      }
    }
    auto wait_until = deadline;
    if (options_.trigger == "software" && options_.trigger_interval_ms > 0) {
      const auto now = std::chrono::steady_clock::now();
      // A trigger while every buffer holds a frame would lose its frame: it waits instead (the
      // camera is slowed to the lane, nothing dropped).
      if (now >= next_trigger_ && free_buffers() > 0) {
        try {
          trigger();
        } catch (const Error& e) {
          log::warn("lane " + lane_ + ": " + e.what());
        }
        next_trigger_ = now + std::chrono::milliseconds(options_.trigger_interval_ms);
      }
      wait_until = std::min(wait_until, next_trigger_);
    }
    const auto left =
        std::chrono::ceil<std::chrono::microseconds>(wait_until - std::chrono::steady_clock::now());
    ArvBuffer* buffer = arv_stream_timeout_pop_buffer(
        stream_, static_cast<guint64>(std::max<std::int64_t>(left.count(), 0)));
    count_dropped();
    if (buffer == nullptr) return std::nullopt;
    std::optional<Frame> frame;
    if (arv_buffer_get_status(buffer) == ARV_BUFFER_STATUS_SUCCESS &&
        arv_buffer_get_payload_type(buffer) == ARV_BUFFER_PAYLOAD_TYPE_IMAGE) {
      frame = convert(buffer);
    } else {
      const std::lock_guard lock(state_);
      ++dropped_incomplete_;
    }
    arv_stream_push_buffer(stream_, buffer);
    return frame;
  }

  void retry_later(Frame frame, std::chrono::milliseconds delay) override {
    shelf_.put(std::move(frame), delay);
  }
  std::filesystem::path destination(const Frame&, bool) const override { return {}; }
  void finish(const Frame&, const std::filesystem::path&, bool, const std::string&) override {}

  std::string describe() const override {
    const std::string trigger = options_.trigger == "free"       ? "free-run"
                                : options_.trigger == "software" ? "software trigger"
                                                                 : "trigger " + options_.trigger;
    return "camera " + options_.id + " (" + trigger + ")";
  }

  SourceStatus status() const override {
    const std::lock_guard lock(state_);
    return {.connected = connected_,
            .error = error_,
            .reconnects = reconnects_,
            .dropped = dropped_before_ + dropped_now_ + dropped_incomplete_};
  }

  void trigger() override {
    if (options_.trigger != "software") {
      throw ConflictError("lane " + lane_ + "'s " + describe() +
                          " is not software-triggered (camera.trigger = \"software\")");
    }
    // Never waits for a camera being connected or torn down (that can take seconds of timeouts).
    std::unique_lock lock(control_, std::try_to_lock);
    if (!connected_ || !lock.owns_lock() || camera_ == nullptr) {
      const std::lock_guard state(state_);
      throw ConflictError("lane " + lane_ + "'s camera " + options_.id + " is not connected" +
                          (error_.empty() ? std::string() : ": " + error_));
    }
    if (stream_ != nullptr && free_buffers() == 0) {
      throw ConflictError("lane " + lane_ + " is behind: its " + std::to_string(options_.buffers) +
                          " buffers hold frames not inspected yet (trigger later)");
    }
    GError* error = nullptr;
    arv_camera_software_trigger(camera_, &error);
    if (error != nullptr) {
      // The camera did not answer (its control channel retries for a while first): taken as
      // gone, reconnected by the lane's thread, sooner than the heartbeat would tell (~13 s).
      connected_ = false;
      lost_ = true;
      throw ConflictError("lane " + lane_ + ": " +
                          take_error(error, "camera " + options_.id + ": the trigger failed"));
    }
  }

 private:
  static void on_control_lost(ArvDevice*, gpointer self) {
    static_cast<CameraFrames*>(self)->connected_ = false;
    static_cast<CameraFrames*>(self)->lost_ = true;
  }

  // Opens and sets up the camera and its stream; on failure the error is kept and logged when it
  // changes, and the backoff grows.
  void connect() {
    const std::lock_guard lock(control_);
    GError* error = nullptr;
    const auto check = [&](const std::string& what) {
      if (error != nullptr) throw Error(take_error(error, what));
    };
    try {
      camera_ = arv_camera_new(options_.id.c_str(), &error);
      if (camera_ == nullptr) {
        throw Error(take_error(error, "camera " + options_.id +
                                          " not found (arv-tool-0.8 lists "
                                          "the cameras this machine sees)"));
      }
      if (!options_.pixel_format.empty()) {
        arv_camera_set_pixel_format_from_string(camera_, options_.pixel_format.c_str(), &error);
        check("camera.pixel_format " + options_.pixel_format);
      }
      const char* format = arv_camera_get_pixel_format_as_string(camera_, &error);
      check("camera " + options_.id + ": its pixel format");
      const std::string format_name = format != nullptr ? format : "";
      const auto layout = parse_pixel_layout(format_name);
      if (!layout) {
        throw Error("camera " + options_.id + " sends " + printable(format_name, 100) +
                    ", which a station does not convert (camera.pixel_format: Mono8, Mono16, "
                    "RGB8, BGR8, BayerRG8, BayerGR8, BayerGB8 or BayerBG8)");
      }
      layout_ = *layout;
      if (options_.exposure_us) {
        arv_camera_set_exposure_time(camera_, *options_.exposure_us, &error);
        check("camera.exposure_us");
      }
      if (options_.gain_db) {
        arv_camera_set_gain(camera_, *options_.gain_db, &error);
        check("camera.gain_db");
      }
      arv_camera_set_acquisition_mode(camera_, ARV_ACQUISITION_MODE_CONTINUOUS, &error);
      check("camera " + options_.id + ": continuous acquisition");
      if (options_.trigger == "free") {
        arv_camera_clear_triggers(camera_, &error);
        check("camera " + options_.id + ": free-run");
        if (options_.frame_rate > 0) {
          arv_camera_set_frame_rate(camera_, options_.frame_rate, &error);
          check("camera.frame_rate");
        }
      } else {
        const std::string source = options_.trigger == "software" ? "Software" : options_.trigger;
        arv_camera_set_trigger(camera_, source.c_str(), &error);
        check("camera.trigger " + options_.trigger);
      }
      const guint payload = arv_camera_get_payload(camera_, &error);
      check("camera " + options_.id + ": its payload size");
      // GigE Vision: frames through the stream's UDP socket, never Aravis's packet socket (used
      // when root): that socket takes in every packet of every interface until its filter is set,
      // and one such packet taken for a frame of the camera's makes Aravis discard the camera's
      // next frames as late (seen in tests: no frame after a reconnect). A station run as a
      // service (not root) never had it.
      if (ARV_IS_GV_DEVICE(arv_camera_get_device(camera_))) {
        arv_gv_device_set_stream_options(ARV_GV_DEVICE(arv_camera_get_device(camera_)),
                                         ARV_GV_STREAM_OPTION_PACKET_SOCKET_DISABLED);
      }
      stream_ = arv_camera_create_stream(camera_, &on_stream_thread, nullptr, &error);
      if (stream_ == nullptr) throw Error(take_error(error, "camera " + options_.id + ": stream"));
      if (ARV_IS_GV_STREAM(stream_)) size_receive_buffer(payload);
      for (int i = 0; i < options_.buffers; ++i) {
        arv_stream_push_buffer(stream_, arv_buffer_new_allocate(payload));
      }
      lost_ = false;
      g_signal_connect(arv_camera_get_device(camera_), "control-lost",
                       G_CALLBACK(&CameraFrames::on_control_lost), this);
      arv_camera_start_acquisition(camera_, &error);
      check("camera " + options_.id + ": starting acquisition");
      backoff_.succeeded();
      {
        const std::lock_guard state(state_);
        error_.clear();
      }
      connected_ = true;
      log::info("lane " + lane_ + ": " + describe() + " connected, " +
                std::string(pixel_layout_name(layout_)));
    } catch (const Error& e) {
      fail_locked(e.what());
    }
  }

  // `reachable`: the camera may still answer (stop its acquisition first); a lost one would only
  // make each request wait for its timeouts.
  void fail_locked(const std::string& why, bool reachable = true) {
    disconnect_locked(reachable);
    backoff_.failed();
    const std::lock_guard state(state_);
    if (why != error_) log::warn("lane " + lane_ + ": " + why + " (trying again)");
    error_ = why;
  }

  void disconnect_locked(bool reachable = true) {
    connected_ = false;
    if (stream_ != nullptr) {
      guint64 completed = 0, failures = 0, underruns = 0;
      arv_stream_get_statistics(stream_, &completed, &failures, &underruns);
      const std::lock_guard state(state_);
      dropped_before_ += failures + underruns;
      dropped_now_ = 0;
    }
    if (camera_ != nullptr) {
      g_signal_handlers_disconnect_by_data(arv_camera_get_device(camera_), this);
      if (reachable) arv_camera_stop_acquisition(camera_, nullptr);
    }
    if (stream_ != nullptr) g_object_unref(stream_);
    if (camera_ != nullptr) g_object_unref(camera_);
    stream_ = nullptr;
    camera_ = nullptr;
  }

  // Aravis 0.8 sizes a stream's socket when the first packet of a frame is in, too late for a
  // frame sent while the CPU is busy: the kernel's default buffer (208 KiB) holds about 90 of a
  // 256 KiB frame's 195 packets. The socket (found by its port) gets room for a few frames before
  // acquisition starts; a buffer the host's net.core.rmem_max keeps below two frames is one
  // warning that says so (once per lane).
  void size_receive_buffer(guint payload) {
    const guint16 port = arv_gv_stream_get_port(ARV_GV_STREAM(stream_));
    const int fd = udp_socket_on_port(port);
    if (fd < 0) return;
    const int wanted =
        static_cast<int>(std::clamp<std::uint64_t>(4ULL * payload, 2 << 20, 1 << 28));
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &wanted, sizeof wanted) != 0) {
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &wanted, sizeof wanted);
    }
    int have = 0;
    socklen_t length = sizeof have;
    ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &have, &length);  // the kernel's doubled figure
    if (static_cast<std::uint64_t>(have) < 4ULL * payload && !small_buffer_told_) {
      small_buffer_told_ = true;  // once, not at every reconnect
      log::warn("camera " + options_.id + ": its frames are received into " +
                std::to_string(have / 1024) + " KiB, less than two frames of " +
                std::to_string(payload / 1024) +
                " KiB: a frame may be lost while the CPU is busy (raise net.core.rmem_max, e.g. "
                "sysctl -w net.core.rmem_max=" +
                std::to_string(wanted) + ")");
    }
  }

  // The process's UDP socket bound to `port`; -1 when there is none.
  static int udp_socket_on_port(guint16 port) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", error)) {
      int fd = -1;
      const std::string name = entry.path().filename().string();
      if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc{}) continue;
      sockaddr_storage address{};
      socklen_t length = sizeof address;
      int type = 0;
      socklen_t type_length = sizeof type;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
          address.ss_family != AF_INET ||
          ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) != 0 || type != SOCK_DGRAM) {
        continue;
      }
      if (ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port) == port) return fd;
    }
    return -1;
  }

  // Buffers the camera can fill now; stream_ stays while control_ or the lane's thread holds it.
  int free_buffers() const {
    gint input = 0, output = 0;
    arv_stream_get_n_buffers(stream_, &input, &output);
    return input;
  }

  void count_dropped() {
    guint64 completed = 0, failures = 0, underruns = 0;
    arv_stream_get_statistics(stream_, &completed, &failures, &underruns);
    const std::lock_guard lock(state_);
    dropped_now_ = failures + underruns;
  }

  Frame convert(ArvBuffer* buffer) const {
    std::size_t size = 0;
    const void* data = arv_buffer_get_image_data(buffer, &size);
    const int width = arv_buffer_get_image_width(buffer);
    const int height = arv_buffer_get_image_height(buffer);
    gint x_padding = 0, y_padding = 0;
    arv_buffer_get_image_padding(buffer, &x_padding, &y_padding);
    const std::size_t stride =
        static_cast<std::size_t>(std::max(width, 0)) * bytes_per_pixel(layout_) +
        static_cast<std::size_t>(std::max(x_padding, 0));
    const guint64 stamp = arv_buffer_get_system_timestamp(buffer);
    char name[48];
    std::snprintf(name, sizeof name, "frame-%06llu.png",
                  static_cast<unsigned long long>(arv_buffer_get_frame_id(buffer)));
    Frame frame{
        .name = name,
        .origin = "camera " + options_.id + " " + name,
        .bytes = {},
        .captured = stamp > 0 ? std::chrono::system_clock::time_point(
                                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                        std::chrono::nanoseconds(stamp)))
                              : std::chrono::system_clock::now(),
        .failure = {},
        .live = true};
    try {
      frame.bytes =
          frame_png(std::span(static_cast<const std::byte*>(data), data != nullptr ? size : 0),
                    width, height, stride, layout_);
    } catch (const Error& e) {
      frame.failure = e.what();
    }
    return frame;
  }

  const CameraSource options_;
  const std::string lane_;
  RetryShelf shelf_;
  Backoff backoff_;
  std::chrono::steady_clock::time_point next_trigger_{};
  std::atomic<bool> lost_{false};       // the control channel is lost: the lane's thread tears down
  std::atomic<bool> connected_{false};  // set up and not lost
  PixelLayout layout_ = PixelLayout::kMono8;
  bool small_buffer_told_ = false;  // size_receive_buffer()'s warning given (the lane's thread)
  // Guards the camera while it is connected, torn down or triggered (trigger() comes from other
  // threads); held for seconds when a lost camera's requests time out.
  std::mutex control_;
  ArvCamera* camera_ = nullptr;
  // Written on the lane's thread under control_; read there, or under control_ (trigger()).
  ArvStream* stream_ = nullptr;
  // Guards what status() reads, never held for long.
  mutable std::mutex state_;
  std::string error_;
  std::uint64_t reconnects_ = 0;
  std::uint64_t dropped_before_ = 0;      // by streams closed before
  std::uint64_t dropped_now_ = 0;         // by this stream
  std::uint64_t dropped_incomplete_ = 0;  // frames the camera sent incomplete
};

}  // namespace

std::unique_ptr<Source> open_camera_source(const CameraSource& camera, const std::string& lane) {
  return std::make_unique<CameraFrames>(camera, lane);
}

}  // namespace pv::station
