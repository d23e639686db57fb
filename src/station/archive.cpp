#include "station/archive.h"

#include <algorithm>
#include <ctime>
#include <vector>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/log.h>
#include <patchvec/pictures.h>

namespace pv::station {
namespace {

std::string day_of(std::chrono::system_clock::time_point time) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", &parts);
  return text;
}

// A day folder's name is its date: YYYY-MM-DD, and nothing else is touched by retention.
bool is_day(const std::string& name) {
  if (name.size() != 10 || name[4] != '-' || name[7] != '-') return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (i != 4 && i != 7 && (name[i] < '0' || name[i] > '9')) return false;
  }
  return true;
}

std::uintmax_t folder_bytes(const std::filesystem::path& folder) {
  std::uintmax_t total = 0;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(folder, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    std::error_code size_error;
    if (it->is_regular_file(size_error)) total += it->file_size(size_error);
  }
  return total;
}

}  // namespace

Archive::Archive(EvidenceArchive options, std::string lane)
    : options_(std::move(options)), lane_(std::move(lane)) {}

bool Archive::wants(const std::string& verdict) const {
  return options_.all || verdict != "normal";
}

std::filesystem::path Archive::keep(std::uint64_t seq, const std::string& name,
                                    std::span<const std::byte> bytes, const Inspected* inspected,
                                    nlohmann::ordered_json result,
                                    std::chrono::system_clock::time_point captured) {
  auto folder = options_.dir / day_of(captured) / lane_ /
                (std::to_string(seq) + "-" + std::filesystem::path(name).stem().string());
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (error) throw Error("archive: cannot create " + folder.string() + ": " + error.message());
  const std::string file_name = std::filesystem::path(name).filename().string();
  {
    AtomicFile image(folder / file_name);
    image.write(bytes);
    image.commit();
  }
  if (inspected != nullptr) {
    // write_heatmap() names its output after the image's folder and name: made there, renamed.
    const auto made =
        write_heatmap(folder, folder / file_name, *inspected->model, inspected->prediction);
    std::filesystem::rename(made, folder / "heatmap.png", error);
    if (error) throw Error("archive: cannot rename " + made.string() + ": " + error.message());
  }
  result["seq"] = seq;
  result["evidence"] = folder.string();
  AtomicFile json(folder / "result.json");
  json.write(result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  json.commit();
  return folder;
}

void Archive::enforce_retention(bool now) {
  const auto clock = std::chrono::steady_clock::now();
  if (!now && clock - checked_ < std::chrono::minutes(1)) return;
  checked_ = clock;
  std::vector<std::string> days;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir, error)) {
    const std::string name = entry.path().filename().string();
    if (is_day(name) && entry.is_directory()) days.push_back(name);
  }
  std::sort(days.begin(), days.end());
  const std::string oldest_kept =
      day_of(std::chrono::system_clock::now() - std::chrono::hours(24) * options_.max_age_days);
  std::vector<std::pair<std::string, std::uintmax_t>> sized;
  std::uintmax_t total = 0;
  for (const auto& day : days) {
    if (day < oldest_kept) {
      std::filesystem::remove_all(options_.dir / day, error);
      log::info("archive " + options_.dir.string() + ": deleted " + day + " (older than " +
                std::to_string(options_.max_age_days) + " days)");
      continue;
    }
    sized.emplace_back(day, folder_bytes(options_.dir / day));
    total += sized.back().second;
  }
  // The oldest days go first while the archive is over its size, but never today's.
  for (std::size_t i = 0;
       i + 1 < sized.size() && total > static_cast<std::uintmax_t>(options_.max_bytes); ++i) {
    std::filesystem::remove_all(options_.dir / sized[i].first, error);
    total -= sized[i].second;
    log::info("archive " + options_.dir.string() + ": deleted " + sized[i].first +
              " (the archive was over its size limit)");
  }
}

}  // namespace pv::station
