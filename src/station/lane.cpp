#include "station/lane.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <thread>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/image.h>
#include <patchvec/json.h>
#include <patchvec/log.h>
#include <patchvec/store.h>
#include <patchvec/text.h>

#include "station/modbus_sink.h"
#include "station/mqtt_sink.h"
#include "station/webhook_sink.h"
#include "util/clock.h"

namespace pv::station {
namespace {

constexpr auto kRateWindow = std::chrono::seconds(10);
constexpr int kMaxAttempts = 3;  // for failures that are not the file's (the store, a bug)

const std::filesystem::path& journal_dir(const std::filesystem::path& lane_dir) {
  std::error_code error;
  std::filesystem::create_directories(lane_dir, error);
  if (error) throw Error("cannot create " + lane_dir.string() + ": " + error.message());
  return lane_dir;
}

}  // namespace

LaneRunner::LaneRunner(const Lane& lane, std::string category, const std::string& station,
                       const Inspector& inspector, const std::filesystem::path& lane_dir,
                       std::function<void()> on_record)
    : lane_(lane),
      category_(std::move(category)),
      station_(station),
      inspector_(inspector),
      journal_(journal_dir(lane_dir)),
      source_(open_source(lane)),
      on_record_(std::move(on_record)) {
  if (lane_.archive) archive_.emplace(*lane_.archive, lane_.name);
  for (std::size_t i = 0; i < lane_.mqtt.size(); ++i) {
    sinks_.push_back(
        start_mqtt_sink(lane_.mqtt[i], {.station = station_, .lane = lane_.name, .index = i},
                        journal_, lane_dir / ("mqtt-" + std::to_string(i) + ".position")));
  }
  for (std::size_t i = 0; i < lane_.webhooks.size(); ++i) {
    sinks_.push_back(start_webhook_sink(lane_.webhooks[i], journal_,
                                        lane_dir / ("webhook-" + std::to_string(i) + ".position")));
  }
  if (lane_.modbus) {
    sinks_.push_back(
        start_modbus_sink(*lane_.modbus, journal_, lane_dir / "modbus.position", &signals_));
  }
  if (journal_.size() > 0) {
    log::info("lane " + lane_.name + ": " + std::to_string(journal_.size()) +
              " results recorded before (" + journal_.dir().string() + ")");
  }
}

LaneRunner::~LaneRunner() {
  stop(std::chrono::steady_clock::now());
}

void LaneRunner::start() {
  thread_ = std::thread([this] { run(); });
}

void LaneRunner::stop(std::chrono::steady_clock::time_point deadline) {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  for (auto& sink : sinks_) sink->drain_and_stop(deadline);
}

// Segments every sink has delivered, older than the lane's journal_days, go.
void LaneRunner::trim_journal() {
  std::uint64_t delivered = journal_.size();
  for (const auto& sink : sinks_) {
    const SinkStatus status = sink->status();
    delivered = std::min(delivered, journal_.size() - std::min(journal_.size(), status.pending));
  }
  journal_.trim(delivered, std::filesystem::file_time_type::clock::now() -
                               std::chrono::hours(24) * lane_.journal_days);
}

void LaneRunner::run() {
  std::map<std::string, int> attempts;
  auto trimmed = std::chrono::steady_clock::time_point{};
  while (!stopping_) {
    if (std::chrono::steady_clock::now() - trimmed > std::chrono::minutes(1)) {
      try {
        trim_journal();
      } catch (const Error& e) {
        log::warn("lane " + lane_.name + ": " + e.what());
      }
      trimmed = std::chrono::steady_clock::now();
    }
    std::optional<Frame> frame;
    try {
      frame = source_->next(std::chrono::milliseconds(200));
    } catch (const std::exception& e) {
      // No source failure ends the lane (nor the station): it is in fault and tries again.
      signals_.fault = true;
      log::warn("lane " + lane_.name + ": its source failed: " + e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    if (!frame) continue;
    try {
      signals_.busy = true;
      take(*frame);
      signals_.busy = false;
      signals_.fault = false;
      attempts.erase(frame->name);
    } catch (const std::exception& e) {  // pv::Error, and whatever a library throws
      signals_.busy = false;
      signals_.fault = true;
      // Not the frame's fault (the store, the disk, a bug): tried again a little later, a few
      // times.
      const int attempt = ++attempts[frame->name];
      log::warn("lane " + lane_.name + ": " + printable(frame->name, 200) + ": " + e.what() +
                (attempt < kMaxAttempts     ? " (trying again)"
                 : lane_.folder.has_value() ? " (given up; the file stays)"
                                            : " (given up)"));
      if (attempt < kMaxAttempts) {
        source_->retry_later(std::move(*frame), std::chrono::seconds(attempt));
      } else {
        attempts.erase(frame->name);
      }
    }
  }
}

void LaneRunner::take(const Frame& frame) {
  const std::string& name = frame.name;
  const auto captured = frame.captured;
  const auto started = std::chrono::steady_clock::now();
  const std::span<const std::byte> bytes = frame.bytes;
  // The key (Frame::live); that of a frame that cannot be read: its name and when it was written.
  const std::string stamp = utc_time_ms(captured);
  const std::string keyed_name = frame.live ? name + "@" + stamp : name;
  const std::string key =
      frame.failure.empty()
          ? image_key(lane_.name, keyed_name, bytes)
          : image_key(lane_.name, name, std::as_bytes(std::span(stamp.data(), stamp.size())));
  if (journal_.contains(key)) {
    // Recorded before the station stopped, not moved yet: only the move is left to do.
    const bool failed = !frame.failure.empty();
    source_->finish(frame, source_->destination(frame, failed), failed, "recorded before");
    return;
  }

  std::shared_ptr<const Inspected> seen;
  json::Json result{{"key", key},
                    {"station", station_},
                    {"lane", lane_.name},
                    {"category", category_},
                    {"name", name}};
  std::string failure = frame.failure;
  if (failure.empty()) {
    try {
      auto inspected = std::make_shared<const Inspected>(
          inspector_.inspect(category_, EncodedImage{.bytes = bytes, .name = frame.origin}));
      const Inspection& inspection = inspected->inspection;
      seen = inspected;
      result["verdict"] = verdict_name(inspection.verdict);
      result["score"] = inspection.score;
      result["threshold"] = json::number_or_null(inspection.threshold);
      result["normalized"] = json::number_or_null(inspection.normalized);
      result["reason"] = inspection.reason;
      result["report_id"] =
          inspection.report_id ? json::Json(*inspection.report_id) : json::Json(nullptr);
      ++(inspection.verdict == Verdict::kAnomalous ? nok_ : ok_);
    } catch (const ImageError& e) {
      failure = e.what();
    }
  }
  const bool failed = !failure.empty();
  if (failed) {
    result["verdict"] = "error";
    result["error"] = printable(failure, 1000);
    ++failed_;
    log::warn("lane " + lane_.name + ": " + printable(name, 200) + ": " + failure);
  }
  ++inspected_;
  const auto destination = source_->destination(frame, failed);
  result["captured"] = utc_time_ms(captured);
  result["recorded"] = utc_time_ms(std::chrono::system_clock::now());
  const double latency_ms =
      std::chrono::duration<double, std::milli>(std::chrono::system_clock::now() - captured)
          .count();
  result["latency_ms"] = std::round(latency_ms * 10) / 10;
  result["inspect_ms"] = std::round(std::chrono::duration<double, std::milli>(
                                        std::chrono::steady_clock::now() - started)
                                        .count() *
                                    10) /
                         10;
  result["file"] = destination.empty() ? json::Json(nullptr) : json::Json(destination.string());
  result["evidence"] = nullptr;
  if (archive_ && archive_->wants(result["verdict"].get<std::string>())) {
    try {
      result["evidence"] =
          archive_->keep(journal_.size() + 1, name, bytes, seen.get(), result, captured).string();
    } catch (const Error& e) {
      log::warn("lane " + lane_.name + ": the evidence of " + printable(name, 200) +
                " is not kept: " + e.what());
    }
    archive_->enforce_retention();
  }
  journal_.append(std::move(result), captured);
  for (auto& sink : sinks_) sink->notify();
  source_->finish(frame, destination, failed, failure);
  latency_.observe(latency_ms / 1000);
  const auto now = std::chrono::steady_clock::now();
  {
    const std::lock_guard lock(mutex_);
    if (seen) latest_ = std::move(seen);
    recent_.push_back(now);
    while (!recent_.empty() && now - recent_.front() > kRateWindow) recent_.pop_front();
  }
  if (on_record_) on_record_();
}

LaneStatus LaneRunner::status() const {
  LaneStatus out{.name = lane_.name,
                 .category = category_,
                 .source = source_->describe(),
                 .inspected = inspected_,
                 .ok = ok_,
                 .nok = nok_,
                 .failed = failed_,
                 .sequence = journal_.size(),
                 .busy = signals_.busy,
                 .fault = signals_.fault,
                 .latency_p50_ms = latency_.percentile_ms(0.5),
                 .latency_p95_ms = latency_.percentile_ms(0.95)};
  {
    const std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    std::size_t in_window = 0;
    for (const auto& t : recent_) in_window += now - t <= kRateWindow;
    out.images_per_second =
        static_cast<double>(in_window) / std::chrono::duration<double>(kRateWindow).count();
  }
  const SourceStatus source = source_->status();
  out.source_connected = source.connected;
  out.source_error = source.error;
  out.source_reconnects = source.reconnects;
  out.frames_dropped = source.dropped;
  if (out.sequence > 0) out.last_result = journal_.read(out.sequence);
  for (const auto& sink : sinks_) out.sinks.push_back(sink->status());
  return out;
}

void LaneRunner::trigger() const {
  source_->trigger();
}

std::shared_ptr<const Inspected> LaneRunner::latest() const {
  const std::lock_guard lock(mutex_);
  return latest_;
}

std::string LaneRunner::prometheus() const {
  const std::string lane = "lane=\"" + label_value(lane_.name) + "\"";
  std::string out;
  const auto counter = [&](const char* verdict, std::uint64_t value) {
    out += "patchvec_station_images_total{" + lane + ",verdict=\"" + verdict + "\"} " +
           std::to_string(value) + "\n";
  };
  counter("normal", ok_);
  counter("anomalous", nok_);
  counter("error", failed_);
  out += latency_.prometheus("patchvec_station_latency_seconds", lane);
  const SourceStatus source = source_->status();
  out += "patchvec_station_source_connected{" + lane + "} " +
         std::to_string(source.connected ? 1 : 0) + "\n";
  out += "patchvec_station_source_reconnects_total{" + lane + "} " +
         std::to_string(source.reconnects) + "\n";
  out += "patchvec_station_frames_dropped_total{" + lane + "} " + std::to_string(source.dropped) +
         "\n";
  for (const auto& sink : sinks_) {
    const SinkStatus status = sink->status();
    const std::string labels = lane + ",sink=\"" + label_value(status.name) + "\"";
    out += "patchvec_station_sink_connected{" + labels + "} " +
           std::to_string(status.connected ? 1 : 0) + "\n";
    out += "patchvec_station_outbox_depth{" + labels + "} " + std::to_string(status.pending) + "\n";
    out += "patchvec_station_sink_reconnects_total{" + labels + "} " +
           std::to_string(status.reconnects) + "\n";
    out += sink->latency().prometheus("patchvec_station_delivery_latency_seconds", labels);
  }
  return out;
}

}  // namespace pv::station
