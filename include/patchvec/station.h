// A station on the production line: lanes that each take images from a source (a hot folder, a
// GenICam camera, a video stream),
// inspect them with a category's model through the one inspection use case (Inspector), record
// every result once in a durable journal, and deliver it to sinks (MQTT, webhooks) that may be
// down for a while without anything being lost. The station serves the HTTP API and page of `serve`
// too. docs/station.md describes the whole thing; a configuration file is TOML.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <patchvec/service.h>

namespace pv {

// What a hot folder does with a file once its result is recorded.
enum class AfterInspection { kMove, kKeep, kDelete };
std::string_view after_inspection_name(AfterInspection after);  // "move", "keep", "delete"
std::optional<AfterInspection> parse_after_inspection(std::string_view name);

// A folder images are dropped into. A file is taken once it is complete: closed after writing or
// renamed in (inotify), or there when the lane starts. Taken files go to <dir>/done/ or, when
// they are no image, to <dir>/failed/ with <name>.reason beside them; or stay, or are deleted, as
// `after` says (files that were no image go to failed/ even then, unless kept). Hidden files
// (".name") and names ending in ".part" or ".tmp" are never taken: write under such a name and
// rename into place.
struct FolderSource {
  std::filesystem::path dir;
  AfterInspection after = AfterInspection::kMove;
  std::int64_t max_file_bytes = 32 << 20;  // larger files fail without being read
};

// A GenICam camera (GigE Vision, USB3 Vision) through Aravis. Each frame is converted to RGB (mono
// replicated, Bayer demosaiced, 16-bit kept as 16-bit) and inspected once, in the order the camera
// sent them. A camera that drops out (or is not there at the start) is reconnected with a backoff
// of 1 s doubling to 30 s, counted; the lane and the others keep running meanwhile.
struct CameraSource {
  // Aravis's device id, as `arv-tool-0.8` lists them: "<vendor>-<model>-<serial>", or an IP
  // address. "Fake_1" is Aravis's in-process simulated camera.
  std::string id;
  // "free" (free-run), "software" (a trigger every `trigger_interval_ms`, and on
  // POST /v1/station/lanes/<lane>/trigger), or a hardware trigger's source: "Line0", "Line1", ...
  std::string trigger = "free";
  int trigger_interval_ms = 0;  // software: 0 triggers only on request
  double frame_rate = 0;        // free-run: frames per second asked of the camera (0: as it is)
  std::optional<double> exposure_us;
  std::optional<double> gain_db;
  // "Mono8", "Mono16", "RGB8", "BGR8", "BayerRG8", "BayerGR8", "BayerGB8", "BayerBG8"; empty:
  // as the camera is set (one of those).
  std::string pixel_format;
  // Frames held for the lane; when all are full the camera's next frames are lost (counted as
  // dropped): the lane must keep up with the camera.
  int buffers = 8;
};

// A video stream: rtsp://, http:// or https:// (MJPEG), or a video file's path, read through
// OpenCV's FFmpeg backend. Every `every_nth` frame is taken, at most `max_fps` a second. A live
// stream is read as fast as it comes: when the lane is behind, the oldest waiting frame is dropped
// (counted); a file is read no faster than the lane inspects, to its end. A stream that fails is
// opened again with a backoff of 1 s doubling to 30 s, counted.
struct StreamSource {
  std::string url;
  int every_nth = 1;
  double max_fps = 0;  // 0: no limit
  int queue = 4;       // frames waiting for the lane
  bool is_file() const { return url.find("://") == std::string::npos; }
};

// An MQTT broker that receives one JSON message per image at QoS 1 on `topic`, and the station's
// status ("online"/"offline", retained, the last will) on <topic>/status.
struct MqttSink {
  std::string url;  // mqtt://[user[:password]@]host[:port]/topic, or mqtts:// for TLS
  std::string host;
  int port = 1883;
  std::string topic;
  std::string username;
  std::string password;
  bool tls = false;
  std::filesystem::path ca_file;  // TLS: the broker's CA (empty: the system's)
  std::string client_id;          // empty: patchvec-<station>-<lane>[-<n> for the lane's n-th]
  int keepalive_seconds = 30;
};

// Parses an mqtt:// or mqtts:// URL into an MqttSink (the default port 1883, 8883 with TLS);
// throws pv::Error naming `what` for a URL without a host or a topic, or with another scheme.
MqttSink parse_mqtt_url(const std::string& url, const std::string& what);

// An HTTP(S) endpoint that receives each result as a POST of its JSON, with the headers
// Idempotency-Key: <the image's key> and, with a secret, X-PatchVec-Signature: sha256=<hex
// HMAC-SHA256 of the body>. Any 2xx answer acknowledges it; anything else (or no answer within
// `timeout_seconds`) is tried again, after 1 s doubling to 30 s, until it is acknowledged.
struct WebhookSink {
  std::string url;     // http:// or https://
  std::string secret;  // empty: the requests are not signed
  int timeout_seconds = 10;
};

// Checks an http(s) URL for a webhook; throws pv::Error naming `what`.
void check_webhook_url(const std::string& url, const std::string& what);
// A secret kept in a file of its own (at most 4 KiB; a trailing newline is not part of it);
// throws pv::Error naming `what` for a missing or empty file.
std::string read_secret_file(const std::filesystem::path& file, const std::string& what);

// A Modbus TCP server for a PLC (libmodbus): the lane's latest result in holding registers, and
// its bits in coils (docs/station.md has the register map). Modbus has no authentication: it
// listens on `address` only and the PLC may write nothing but the acknowledge register. With
// `handshake`, each result stays in the registers until the PLC writes its sequence number into
// the acknowledge register, so that none is missed (the journal holds the ones waiting);
// without, the registers show the latest result.
struct ModbusSink {
  std::string address = "127.0.0.1";
  int port = 1502;  // 0: any free one (logged)
  bool handshake = false;
  int max_clients = 4;
};

// The evidence of inspected images, kept for later: per image a folder
// <dir>/<YYYY-MM-DD>/<lane>/<seq>-<name>/ with the image as it came, heatmap.png and
// result.json, written before the result is recorded (the result's "evidence" names it). Day
// folders older than `max_age_days` are deleted, and the oldest days while the archive is larger
// than `max_bytes`; checked at most once a minute.
struct EvidenceArchive {
  std::filesystem::path dir;
  bool all = false;  // every image; false: anomalous ones (and files that were no image) only
  int max_age_days = 30;
  std::int64_t max_bytes = std::int64_t{10} << 30;
};

// One lane: a source, a category's model, the sinks of its results.
struct Lane {
  std::string name;             // [a-z0-9_-]+, unique in the station
  std::filesystem::path model;  // a .pvm file; the lane inspects its category
  // The source: exactly one of these.
  std::optional<FolderSource> folder;
  std::optional<CameraSource> camera;
  std::optional<StreamSource> stream;
  std::vector<MqttSink> mqtt;
  std::vector<WebhookSink> webhooks;
  std::optional<ModbusSink> modbus;
  std::optional<EvidenceArchive> archive;
  // The journal's segments that every sink has delivered are deleted once this old. An image is
  // recognised as recorded only while its segment is kept (docs/station.md).
  int journal_days = 7;
};

struct StationOptions {
  std::string name;  // in every message; empty: the host's name
  // Journals, sinks' positions, report images and spool; one folder per station. Empty:
  // $XDG_DATA_HOME/patchvec/station/<name>.
  std::filesystem::path state_dir;
  std::vector<Lane> lanes;
  // The HTTP API and page (port, host, tokens, limits, threads, batching, store). Its models are
  // the lanes' models; report images and the spool live in the state folder unless set there.
  ServiceOptions service;
  // How long stop() waits for the sinks to deliver what is recorded before it returns.
  std::chrono::milliseconds drain_timeout{10000};
};

// Reads a station's TOML file (docs/station.md). Every unknown key and bad value is one pv::Error
// naming the file and the key ("station.toml: lanes[1].mqtt[0].url: ..."), before anything
// starts. check_station() is applied too.
StationOptions load_station_config(const std::filesystem::path& file);
// The same for the text of such a file (at most 1 MiB); relative paths are relative to `file`'s
// folder, and messages name `file`.
StationOptions parse_station_config(std::string_view text, const std::filesystem::path& file);

// The checks every station passes before it starts, whether from a file or from flags: at least
// one lane, names valid and unique, every model a readable file, every folder present (created
// when missing), sinks complete. Throws pv::Error naming the lane and the setting.
void check_station(const StationOptions& options);

struct SinkStatus {
  std::string name;             // "mqtt://127.0.0.1:1883/line1", "webhook https://host/path"
  bool connected = false;       // MQTT: connected now; a webhook: its last request was acknowledged
  std::uint64_t delivered = 0;  // results acknowledged by the other side since the start
  std::uint64_t pending = 0;    // recorded results not acknowledged yet (the outbox's depth)
  std::uint64_t reconnects = 0;
  double latency_p50_ms = 0;  // capture to acknowledged, recent results
  double latency_p95_ms = 0;
};

struct LaneStatus {
  std::string name;
  std::string category;
  std::string source;            // "folder /srv/in", "camera Basler-40012345", "stream rtsp://..."
  bool source_connected = true;  // a camera or stream delivers now (a folder always does)
  std::string source_error;      // why it does not, when it does not
  std::uint64_t source_reconnects = 0;
  std::uint64_t frames_dropped = 0;  // frames the lane was too slow to take (cameras, live streams)
  std::uint64_t inspected = 0;       // since the start
  std::uint64_t ok = 0;
  std::uint64_t nok = 0;
  std::uint64_t failed = 0;      // files that were no image (moved to failed/)
  std::uint64_t sequence = 0;    // the last result's sequence number (the journal's count)
  bool busy = false;             // inspecting an image now
  bool fault = false;            // the last image failed for a reason not the file's
  double images_per_second = 0;  // over the last 10 s
  double latency_p50_ms = 0;     // capture (file complete) to result recorded, recent images
  double latency_p95_ms = 0;
  std::string last_result;  // the last journal record (JSON); empty before the first
  std::vector<SinkStatus> sinks;
};

struct StationStatus {
  std::string name;
  std::vector<LaneStatus> lanes;
};

// GET /v1/station's JSON for `status` (docs/station.md).
std::string station_status_json(const StationStatus& status);

// Thread-safety: run() on one thread; stop() and status() from any thread.
class Station {
 public:
  // Checks the options, loads the models, opens the state folder (recovering each lane's journal
  // after a crash) and the HTTP service. Throws pv::Error naming what is wrong.
  explicit Station(StationOptions options);
  ~Station();
  Station(const Station&) = delete;
  Station& operator=(const Station&) = delete;

  // Binds the HTTP port; returns it.
  int bind();
  // Runs the lanes, their sinks and the HTTP service until stop(): images in flight finish and
  // the sinks get up to drain_timeout to deliver what is recorded.
  void run();
  void stop();
  StationStatus status() const;
  // A software trigger for `lane`'s camera. Throws NotFoundError for a lane the station does not
  // have, ConflictError when its source is no software-triggered camera or is not connected.
  void trigger(const std::string& lane);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pv
