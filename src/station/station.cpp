// The station: the lanes' models in one Inspector, which the lanes and the HTTP service share
// (one batcher, one store, one report spool), and a LaneRunner per lane.
#include <map>
#include <set>

#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/inspector.h>
#include <patchvec/log.h>
#include <patchvec/model.h>
#include <patchvec/station.h>

#include "station/lane.h"
#include "util/sha256.h"

namespace pv {

struct Station::Impl {
  StationOptions options;
  std::map<std::string, std::string> lane_categories;  // lane -> category
  std::unique_ptr<Inspector> inspector;
  std::unique_ptr<InspectionService> service;
  std::vector<std::unique_ptr<station::LaneRunner>> lanes;
  bool bound = false;

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
    service = std::make_unique<InspectionService>(options.service, *inspector);
    for (const Lane& lane : options.lanes) {
      try {
        lanes.push_back(std::make_unique<station::LaneRunner>(
            lane, lane_categories.at(lane.name), options.name, *inspector,
            options.state_dir / "lanes" / lane.name));
      } catch (const Error& e) {
        throw Error("lane " + lane.name + ": " + e.what());
      }
    }
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
                                .backbones = std::make_shared<BackboneCache>()};
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
  const auto deadline = std::chrono::steady_clock::now() + impl_->options.drain_timeout;
  for (auto& lane : impl_->lanes) lane->stop(deadline);
  impl_->inspector->flush_reports();
  log::info("station " + impl_->options.name + ": stopped");
}

void Station::stop() {
  impl_->service->stop();
}

StationStatus Station::status() const {
  StationStatus out{.name = impl_->options.name, .lanes = {}};
  for (const auto& lane : impl_->lanes) out.lanes.push_back(lane->status());
  return out;
}

}  // namespace pv
