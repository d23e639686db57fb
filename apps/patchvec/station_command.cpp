// patchvec station: lanes of images from hot folders, cameras and streams, inspected, journalled
// and sent to MQTT, with the HTTP API and page of `serve` (docs/station.md).
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <patchvec/error.h>
#include <patchvec/station.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct StationFlags {
  std::filesystem::path config;
  bool check = false;
  // One lane from flags alone.
  std::string lane = "main";
  std::filesystem::path model;
  std::filesystem::path folder;
  std::string after = "move";
  std::string camera;
  std::string trigger = "free";
  int trigger_interval_ms = 0;
  std::string pixel_format;
  std::string stream;
  int every_nth = 1;
  double max_fps = 0;
  std::vector<std::string> mqtt;
  std::vector<std::string> webhooks;
  std::filesystem::path webhook_secret_file;
  std::optional<int> modbus_port;
  bool modbus_handshake = false;
  std::string modbus_address = "127.0.0.1";
  std::filesystem::path archive;
  bool archive_all = false;
  StationOptions options;
};

StationOptions station_options(StationFlags& flags, const CLI::App& cmd) {
  const bool lane_flags = !flags.model.empty() || !flags.folder.empty() || !flags.camera.empty() ||
                          !flags.stream.empty() || !flags.mqtt.empty() || !flags.webhooks.empty() ||
                          flags.modbus_port.has_value() || !flags.archive.empty();
  if (!flags.config.empty()) {
    if (lane_flags) {
      throw Error(
          "--config and --model/--folder/--camera/--stream/--mqtt/--webhook/--modbus: give one or "
          "the other");
    }
    StationOptions options = load_station_config(flags.config);
    // Flags given beside the file win over it.
    if (cmd.count("--state") > 0) options.state_dir = flags.options.state_dir;
    if (cmd.count("--name") > 0) options.name = flags.options.name;
    if (cmd.count("--port") > 0) options.service.port = flags.options.service.port;
    if (cmd.count("--host") > 0) options.service.host = flags.options.service.host;
    return options;
  }
  const int sources = !flags.folder.empty() + !flags.camera.empty() + !flags.stream.empty();
  if (flags.model.empty() || sources == 0) {
    throw Error(
        "a station needs --config FILE, or --model M.pvm and --folder DIR, --camera ID or "
        "--stream URL for one lane");
  }
  if (sources > 1) throw Error("--folder, --camera and --stream: one source per lane");
  StationOptions options = flags.options;
  Lane lane{.name = flags.lane, .model = flags.model};
  if (!flags.folder.empty()) {
    const auto after = parse_after_inspection(flags.after);
    if (!after) throw Error("--after is '" + flags.after + "', not move, keep or delete");
    lane.folder = FolderSource{.dir = flags.folder, .after = *after};
  }
  if (!flags.camera.empty()) {
    lane.camera = CameraSource{.id = flags.camera,
                               .trigger = flags.trigger,
                               .trigger_interval_ms = flags.trigger_interval_ms,
                               .pixel_format = flags.pixel_format};
  }
  if (!flags.stream.empty()) {
    lane.stream =
        StreamSource{.url = flags.stream, .every_nth = flags.every_nth, .max_fps = flags.max_fps};
  }
  for (const std::string& url : flags.mqtt) lane.mqtt.push_back(parse_mqtt_url(url, "--mqtt"));
  const std::string secret =
      flags.webhook_secret_file.empty()
          ? ""
          : read_secret_file(flags.webhook_secret_file, "--webhook-secret-file");
  for (const std::string& url : flags.webhooks) {
    check_webhook_url(url, "--webhook");
    lane.webhooks.push_back({.url = url, .secret = secret});
  }
  if (flags.modbus_port) {
    lane.modbus = ModbusSink{.address = flags.modbus_address,
                             .port = *flags.modbus_port,
                             .handshake = flags.modbus_handshake};
  }
  if (!flags.archive.empty())
    lane.archive = EvidenceArchive{.dir = flags.archive, .all = flags.archive_all};
  options.lanes.push_back(std::move(lane));
  check_station(options);
  return options;
}

void print_plan(const StationOptions& options) {
  std::printf("station %s: %zu lanes\n",
              options.name.empty() ? "(host name)" : options.name.c_str(), options.lanes.size());
  for (const Lane& lane : options.lanes) {
    std::printf("  lane %s: ", lane.name.c_str());
    if (lane.folder) {
      std::printf("folder %s (then %s)", lane.folder->dir.string().c_str(),
                  std::string(after_inspection_name(lane.folder->after)).c_str());
    }
    if (lane.camera) {
      std::printf("camera %s (trigger %s%s%s)", lane.camera->id.c_str(),
                  lane.camera->trigger.c_str(), lane.camera->pixel_format.empty() ? "" : ", ",
                  lane.camera->pixel_format.c_str());
    }
    if (lane.stream) {
      std::printf("stream %s (every %d%s)", lane.stream->url.c_str(), lane.stream->every_nth,
                  lane.stream->every_nth == 1 ? "" : "th");
    }
    std::printf(" -> %s", lane.model.string().c_str());
    for (const MqttSink& sink : lane.mqtt) {
      std::printf(" -> mqtt%s://%s:%d/%s", sink.tls ? "s" : "", sink.host.c_str(), sink.port,
                  sink.topic.c_str());
    }
    for (const WebhookSink& sink : lane.webhooks) {
      std::printf(" -> webhook %s%s", sink.url.substr(0, sink.url.find('?')).c_str(),
                  sink.secret.empty() ? " (unsigned)" : " (signed)");
    }
    if (lane.archive) {
      std::printf(" -> archive %s (%s)", lane.archive->dir.string().c_str(),
                  lane.archive->all ? "all" : "anomalous");
    }
    if (lane.modbus) {
      std::printf(" -> modbus %s:%d%s", lane.modbus->address.c_str(), lane.modbus->port,
                  lane.modbus->handshake ? " (handshake)" : "");
    }
    std::printf("\n");
  }
}

void run_station(StationFlags& flags, const CLI::App& cmd) {
  const StationOptions options = station_options(flags, cmd);
  if (flags.check) {
    print_plan(options);
    std::printf("configuration valid\n");
    return;
  }
  block_stop_signals();  // before the station's threads start
  Station station(options);
  const int port = station.bind();
  std::printf("PatchVec station is running; its page is http://%s:%d/  (Ctrl-C stops it)\n",
              options.service.host.c_str(), port);
  std::fflush(stdout);
  run_until_signal([&] { station.run(); }, [&] { station.stop(); });
}

}  // namespace

void add_station_command(CLI::App& app) {
  auto flags = std::make_shared<StationFlags>();
  CLI::App* cmd = app.add_subcommand(
      "station",
      "On the production line: images from hot folders, cameras and streams inspected, results "
      "to MQTT, webhooks and PLCs");
  cmd->footer(R"(
Each lane takes the images dropped into its folder (complete files only: closed after writing or
renamed in), inspects each exactly once with its model, even across restarts and kill -9 (a
journal in --state), moves it to done/ (or failed/ with a .reason file), and publishes the result
as JSON to MQTT at QoS 1 and to webhooks (POST, signed with HMAC-SHA256). While a broker or an
endpoint is down results wait in the journal; every one arrives when it is back, with its image's
key to drop duplicates. A lane may take a GenICam camera's frames instead (--camera ID, through
Aravis; `arv-tool-0.8` lists the ids), or a video stream's (--stream rtsp://..., an MJPEG URL or a
video file). The station serves the API and page of
`patchvec serve` too. SIGTERM drains: the image in flight finishes, the sinks get --drain seconds.
Examples:
  patchvec station --model models/tile.pvm --folder /srv/in --mqtt mqtt://127.0.0.1:1883/line1
  patchvec station --model models/tile.pvm --camera Basler-40012345 --trigger software \
      --trigger-interval 500 --modbus 1502
  patchvec station --config station.toml --check
  patchvec station --config station.toml
docs/station.md has the configuration file, the message and the guarantees.)");
  cmd->add_option("--config", flags->config, "The station's TOML file (docs/station.md)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--check", flags->check, "Check the configuration and the models, then exit");
  cmd->add_option("--model", flags->model, "One lane from flags: its model (.pvm)");
  cmd->add_option("--folder", flags->folder, "One lane from flags: its hot folder");
  cmd->add_option("--camera", flags->camera,
                  "One lane from flags: a GenICam camera's id (arv-tool-0.8 lists them; Fake_1 is "
                  "Aravis's simulated one)");
  cmd->add_option("--trigger", flags->trigger,
                  "The camera's trigger: free (free-run), software, or a line (Line1, ...)")
      ->capture_default_str();
  cmd->add_option("--trigger-interval", flags->trigger_interval_ms,
                  "Software trigger: every N ms (0: only on POST /v1/station/lanes/LANE/trigger)")
      ->capture_default_str();
  cmd->add_option("--pixel-format", flags->pixel_format,
                  "The camera's pixel format: Mono8, Mono16, RGB8, BGR8, BayerRG8, ... (default: "
                  "as it is set)");
  cmd->add_option("--stream", flags->stream,
                  "One lane from flags: an rtsp:// or http(s):// (MJPEG) stream, or a video file");
  cmd->add_option("--every-nth", flags->every_nth, "The stream: take every Nth frame")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-fps", flags->max_fps,
                  "The stream: at most this many frames a second, by the stream's clock (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--mqtt", flags->mqtt,
                  "One lane from flags: where results go, mqtt://[user:pass@]host[:port]/topic "
                  "(or mqtts://); repeatable");
  cmd->add_option("--webhook", flags->webhooks,
                  "One lane from flags: an http(s) URL each result is POSTed to; repeatable");
  cmd->add_option("--webhook-secret-file", flags->webhook_secret_file,
                  "A file holding the secret the webhooks' requests are signed with "
                  "(X-PatchVec-Signature: sha256=HMAC)");
  cmd->add_option("--modbus", flags->modbus_port,
                  "One lane from flags: a Modbus TCP server on this port for a PLC (register map: "
                  "docs/station.md)");
  cmd->add_option("--modbus-address", flags->modbus_address,
                  "The address the Modbus server listens on (Modbus has no authentication)")
      ->capture_default_str();
  cmd->add_flag("--modbus-handshake", flags->modbus_handshake,
                "Each result stays in the registers until the PLC acknowledges it");
  cmd->add_option("--archive", flags->archive,
                  "One lane from flags: keep the evidence (image, heatmap, result) of anomalous "
                  "images in dated folders here (30 days, 10 GB at most)");
  cmd->add_flag("--archive-all", flags->archive_all, "Keep the evidence of every image");
  cmd->add_option("--lane", flags->lane, "One lane from flags: its name")->capture_default_str();
  cmd->add_option("--after", flags->after,
                  "One lane from flags: what happens to an inspected file: move (to done/ or "
                  "failed/), keep, delete")
      ->capture_default_str();
  cmd->add_option("--name", flags->options.name,
                  "The station's name in every message (default: the host's name)");
  cmd->add_option("--state", flags->options.state_dir,
                  "Folder of the journals, sink positions, report images and spool (default: "
                  "$XDG_DATA_HOME/patchvec/station/NAME)");
  cmd->add_option("--drain", flags->options.drain_timeout,
                  "On SIGTERM, how long the sinks may take to deliver what is recorded (e.g. "
                  "10s)");
  add_store_options(*cmd, flags->options.service.store);
  cmd->add_option("--host", flags->options.service.host, "Address of the HTTP API and page")
      ->capture_default_str();
  cmd->add_option("--port", flags->options.service.port, "Port (0: any free one)")
      ->capture_default_str();
  cmd->add_option("--auth-tokens", flags->options.service.auth_tokens,
                  "File of 'TOKEN ROLE' lines, as for patchvec serve")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--insecure", flags->options.service.insecure,
                "Allow a non-loopback --host without --auth-tokens");
  cmd->add_option("--threads", flags->options.service.threads,
                  "Compute threads, shared by all lanes and requests (0 = one per core)");
  add_run_precision_option(*cmd, flags->options.service.precision);
  add_search_option(*cmd, flags->options.service.search);
  cmd->callback([flags, cmd] { run_station(*flags, *cmd); });
}

}  // namespace pv::cli
