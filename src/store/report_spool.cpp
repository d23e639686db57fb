// One file per kept report, <nanoseconds since 1970>-<key>.json (so that names sort oldest first),
// written atomically (temporary file, fsync, rename) in the form the embedded store keeps reports.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/log.h>
#include <patchvec/report_spool.h>
#include <patchvec/text.h>

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

// A spool file is input like any other: what add() writes is checked field by field before the
// store sees it (a forged file must not make one report of a million matches or paths).
constexpr std::size_t kMaxSpoolFileBytes = 1 << 20;
constexpr std::size_t kMaxMatches = 100;
constexpr std::size_t kMaxTextBytes = 4096;

void check_spooled(const AnomalyReport& r) {
  if (r.idempotency_key.size() != 32 ||
      r.idempotency_key.find_first_not_of("0123456789abcdef") != std::string::npos) {
    throw Error("its idempotency key is not 32 hexadecimal digits");
  }
  if (r.status != ReportStatus::kOpen) throw Error("it is not an open report");
  if (r.matches.size() > kMaxMatches) {
    throw Error("it has " + std::to_string(r.matches.size()) + " matches (at most " +
                std::to_string(kMaxMatches) + ")");
  }
  static const std::regex kTime(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)");
  if (!std::regex_match(r.created, kTime)) throw Error("its time is not YYYY-MM-DDTHH:MM:SSZ");
  const auto text = [](const std::string& value, const char* field) {
    if (value.size() > kMaxTextBytes) throw Error(std::string("its ") + field + " is too long");
  };
  text(r.path, "path");
  text(r.image, "image");
  text(r.category, "category");
  if (r.category.empty() || !text_problem(r.category).empty()) {
    throw Error("its category is not one line of text");
  }
  if (!std::isfinite(r.score) || !std::isfinite(r.threshold) || !std::isfinite(r.best_similarity)) {
    throw Error("its score, threshold or similarity is not a finite number");
  }
  for (const Match& m : r.matches) {
    text(m.image.path, "match path");
    text(m.image.defect, "match defect");
    if (m.image.category != r.category) throw Error("a match is of another category");
  }
}

}  // namespace

ReportSpool::ReportSpool(std::filesystem::path dir) : dir_(std::move(dir)) {}

std::optional<std::int64_t> ReportSpool::add(ReportLog& store, AnomalyReport report) {
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

std::size_t ReportSpool::flush(ReportLog& store) {
  const std::lock_guard flushing(flush_mutex_);
  std::size_t stored = 0;
  for (const auto& path : spooled(dir_)) {
    AnomalyReport report;
    try {
      report = store::report_from(nlohmann::json::parse(read_file(path, kMaxSpoolFileBytes)));
      check_spooled(report);
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
