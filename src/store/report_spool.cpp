// One file per kept report, <nanoseconds since 1970>-<key>.json (so that names sort oldest first),
// written atomically (temporary file, fsync, rename) in the form the embedded store keeps reports.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/log.h>
#include <patchvec/report_spool.h>

#include "store/forms.h"
#include "util/clock.h"

namespace pv {
namespace {

std::string new_key() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return text;
}

std::vector<std::filesystem::path> spooled(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

ReportSpool::ReportSpool(std::filesystem::path dir) : dir_(std::move(dir)) {}

std::optional<std::int64_t> ReportSpool::add(VectorStore& store, AnomalyReport report) {
  report.idempotency_key = new_key();
  if (report.created.empty()) report.created = utc_now();  // the time it was found, not written
  try {
    return store.add_report(report);
  } catch (const UnavailableError& e) {
    const std::lock_guard lock(mutex_);
    std::filesystem::create_directories(dir_);
    const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
    char stamp[24];
    std::snprintf(stamp, sizeof stamp, "%020lld",
                  static_cast<long long>(
                      std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch).count()));
    const auto path = dir_ / (std::string(stamp) + "-" + report.idempotency_key + ".json");
    AtomicFile file(path);
    file.write(store::report_json(report).dump());
    file.commit();
    log::warn("report on " + report.path + " kept in " + path.string() +
              " until the store takes it: " + e.what());
    return std::nullopt;
  }
}

std::size_t ReportSpool::flush(VectorStore& store) {
  const std::lock_guard flushing(flush_mutex_);
  std::size_t stored = 0;
  for (const auto& path : spooled(dir_)) {
    AnomalyReport report;
    try {
      report = store::report_from(nlohmann::json::parse(read_file(path, 64 << 20)));
      if (report.idempotency_key.empty()) throw Error("it has no idempotency key");
    } catch (const std::exception& e) {
      std::filesystem::path aside = path;
      aside += ".bad";
      std::error_code error;
      std::filesystem::rename(path, aside, error);
      log::warn("spooled report " + path.string() + " is no report (" + e.what() + "): moved to " +
                aside.string());
      continue;
    }
    try {
      store.add_report(report);  // stored once, whether or not an earlier flush got this far
    } catch (const UnavailableError&) {
      break;
    }
    std::error_code error;
    std::filesystem::remove(path, error);
    ++stored;
  }
  return stored;
}

std::size_t ReportSpool::pending() const {
  const std::lock_guard lock(mutex_);
  return spooled(dir_).size();
}

}  // namespace pv
