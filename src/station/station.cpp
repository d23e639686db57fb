// The station: the lanes' models in one Inspector, which the lanes and the HTTP service share
// (one batcher, one store, one report spool), and a LaneRunner per lane.
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/inspector.h>
#include <patchvec/log.h>
#include <patchvec/model.h>
#include <patchvec/station.h>
#include <patchvec/store.h>
#include <patchvec/text.h>

#include "station/lane.h"
#include "util/sha256.h"

namespace pv {

struct Station::Impl final : StationView {
  StationOptions options;
  std::map<std::string, std::string> lane_categories;  // lane -> category
  std::unique_ptr<Inspector> inspector;
  std::unique_ptr<InspectionService> service;
  std::vector<std::unique_ptr<station::LaneRunner>> lanes;
  bool bound = false;
  // What the station view waits on: a version that grows with every result recorded.
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  std::uint64_t version = 1;
  bool stopping = false;

  explicit Impl(StationOptions o) : options(std::move(o)) {
    check_station(options);
    if (options.name.empty()) options.name = host_name();
    if (options.state_dir.empty()) options.state_dir = user_data_dir("station/" + options.name);
    std::error_code error;
    std::filesystem::create_directories(options.state_dir, error);
    if (error) {
      throw Error("state folder " + options.state_dir.string() +
                  ": cannot create it: " + error.message());
    }
    load_models();
    service = std::make_unique<InspectionService>(options.service, *inspector, this);
    for (const Lane& lane : options.lanes) {
      try {
        lanes.push_back(std::make_unique<station::LaneRunner>(
            lane, lane_categories.at(lane.name), options.name, *inspector,
            options.state_dir / "lanes" / lane.name, [this] { recorded(); }));
      } catch (const Error& e) {
        throw Error("lane " + lane.name + ": " + e.what());
      }
    }
  }

  ~Impl() override { stop_views(); }

  void recorded() {
    {
      const std::lock_guard lock(mutex);
      ++version;
    }
    changed.notify_all();
  }

  void stop_views() {
    {
      const std::lock_guard lock(mutex);
      stopping = true;
    }
    changed.notify_all();
  }

  StationStatus status() const {
    StationStatus out{.name = options.name, .lanes = {}};
    for (const auto& lane : lanes) out.lanes.push_back(lane->status());
    return out;
  }

  std::string status_json() const override { return station_status_json(status()); }

  std::string metrics_text() const override {
    std::string out =
        "# HELP patchvec_station_images_total Images a lane recorded a result for, by verdict.\n"
        "# TYPE patchvec_station_images_total counter\n"
        "# HELP patchvec_station_latency_seconds From capture (the file complete) to the result "
        "recorded.\n"
        "# TYPE patchvec_station_latency_seconds histogram\n"
        "# HELP patchvec_station_delivery_latency_seconds From capture to a sink's "
        "acknowledgement.\n"
        "# TYPE patchvec_station_delivery_latency_seconds histogram\n"
        "# TYPE patchvec_station_sink_connected gauge\n"
        "# HELP patchvec_station_outbox_depth Results recorded and not acknowledged by a sink.\n"
        "# TYPE patchvec_station_outbox_depth gauge\n"
        "# TYPE patchvec_station_sink_reconnects_total counter\n"
        "# HELP patchvec_station_source_connected A lane's camera or stream delivers (a folder: "
        "1).\n"
        "# TYPE patchvec_station_source_connected gauge\n"
        "# TYPE patchvec_station_source_reconnects_total counter\n"
        "# HELP patchvec_station_frames_dropped_total Frames a lane was too slow to take.\n"
        "# TYPE patchvec_station_frames_dropped_total counter\n";
    for (const auto& lane : lanes) out += lane->prometheus();
    return out;
  }

  const station::LaneRunner& runner(const std::string& lane) const {
    for (std::size_t i = 0; i < lanes.size(); ++i) {
      if (options.lanes[i].name == lane) return *lanes[i];
    }
    throw NotFoundError("no lane " + printable(lane, 100));
  }

  std::shared_ptr<const Inspected> latest(const std::string& lane) const override {
    return runner(lane).latest();
  }

  void trigger(const std::string& lane) const override { runner(lane).trigger(); }

  std::uint64_t wait_for_change(std::uint64_t seen,
                                std::chrono::milliseconds timeout) const override {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, timeout, [&] { return stopping || version > seen; });
    return stopping ? 0 : version;
  }

  static std::string host_name() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "station";
    std::string out;
    for (const char c : std::string(name)) {
      const char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out += (std::isalnum(static_cast<unsigned char>(lower)) != 0 || lower == '-') ? lower : '-';
    }
    return out.substr(0, 64);
  }

  // Each lane's model file loaded once; two lanes may share a file, not a category.
  void load_models() {
    const ServiceOptions& s = options.service;
    const ModelLoadOptions load{.threads = s.threads,
                                .batch_size = s.batching.max_batch,
                                .image_limits = s.image_limits,
                                .backbones = std::make_shared<BackboneCache>(),
                                .precision = s.precision,
                                .search = s.search};
    std::map<std::string, ServedModel> models;
    std::map<std::string, std::filesystem::path> files;  // category -> file
    for (const Lane& lane : options.lanes) {
      const auto file = std::filesystem::weakly_canonical(lane.model);
      std::string category;
      for (const auto& [known, path] : files) {
        if (path == file) category = known;
      }
      if (category.empty()) {
        Model model = [&] {
          try {
            return Model::load(file, load);
          } catch (const Error& e) {
            throw Error("lane " + lane.name + ": " + e.what());
          }
        }();
        category = model.info().category;
        if (files.contains(category)) {
          throw Error("lane " + lane.name + ": model " + file.string() + " is of category " +
                      category + ", as " + files[category].string() +
                      " of another lane: a station serves one model per category");
        }
        files[category] = file;
        models.emplace(category,
                       ServedModel{.model = std::make_shared<const Model>(std::move(model)),
                                   .sha256 = sha256_file_hex(file)});
      }
      lane_categories[lane.name] = category;
    }
    inspector = std::make_unique<Inspector>(
        std::move(models), open_store(s.store, options.state_dir / "store.pvs"),
        InspectorOptions{
            .batching = s.batching,
            .report_images_dir = s.report_images_dir.empty() ? options.state_dir / "report-images"
                                                             : s.report_images_dir,
            .report_spool_dir = s.report_spool_dir.empty() ? options.state_dir / "report-spool"
                                                           : s.report_spool_dir});
  }
};

Station::Station(StationOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Station::~Station() = default;

int Station::bind() {
  impl_->bound = true;
  return impl_->service->bind();
}

void Station::run() {
  if (!impl_->bound) bind();
  for (auto& lane : impl_->lanes) lane->start();
  log::info("station " + impl_->options.name + ": " + std::to_string(impl_->lanes.size()) +
            " lanes running; state in " + impl_->options.state_dir.string());
  impl_->service->serve();
  impl_->stop_views();
  const auto deadline = std::chrono::steady_clock::now() + impl_->options.drain_timeout;
  for (auto& lane : impl_->lanes) lane->stop(deadline);
  try {
    impl_->inspector->flush_reports();  // what waits in the spool stays there for the next start
  } catch (const Error& e) {
    log::warn(std::string("station: reports still spooled: ") + e.what());
  }
  log::info("station " + impl_->options.name + ": stopped");
}

void Station::stop() {
  impl_->stop_views();  // the event streams end first, so that the server can stop
  impl_->service->stop();
}

StationStatus Station::status() const {
  return impl_->status();
}

void Station::trigger(const std::string& lane) {
  impl_->trigger(lane);
}

std::string station_status_json(const StationStatus& status) {
  nlohmann::ordered_json lanes = nlohmann::ordered_json::array();
  for (const LaneStatus& lane : status.lanes) {
    nlohmann::ordered_json sinks = nlohmann::ordered_json::array();
    for (const SinkStatus& sink : lane.sinks) {
      sinks.push_back({{"name", sink.name},
                       {"connected", sink.connected},
                       {"delivered", sink.delivered},
                       {"pending", sink.pending},
                       {"reconnects", sink.reconnects},
                       {"latency_p50_ms", sink.latency_p50_ms},
                       {"latency_p95_ms", sink.latency_p95_ms}});
    }
    const auto last = nlohmann::ordered_json::parse(lane.last_result, nullptr, false);
    lanes.push_back({{"name", lane.name},
                     {"category", lane.category},
                     {"source", lane.source},
                     {"source_connected", lane.source_connected},
                     {"source_error", lane.source_error},
                     {"source_reconnects", lane.source_reconnects},
                     {"frames_dropped", lane.frames_dropped},
                     {"inspected", lane.inspected},
                     {"ok", lane.ok},
                     {"nok", lane.nok},
                     {"failed", lane.failed},
                     {"sequence", lane.sequence},
                     {"busy", lane.busy},
                     {"fault", lane.fault},
                     {"images_per_second", lane.images_per_second},
                     {"latency_p50_ms", lane.latency_p50_ms},
                     {"latency_p95_ms", lane.latency_p95_ms},
                     {"last", last.is_object() ? last : nlohmann::ordered_json(nullptr)},
                     {"latest_image", "/v1/station/lanes/" + lane.name + "/latest"},
                     {"sinks", sinks}});
  }
  return nlohmann::ordered_json{{"station", status.name}, {"lanes", lanes}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace pv
