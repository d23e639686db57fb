// A lane's evidence archive (EvidenceArchive): the image, its heatmap and its result per folder,
// in day folders, with retention by age and by size.
#pragma once

#include <chrono>
#include <filesystem>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include <patchvec/inspector.h>
#include <patchvec/station.h>

namespace pv::station {

// Thread-safety: one thread at a time (the lane's).
class Archive {
 public:
  Archive(EvidenceArchive options, std::string lane);

  // Whether a result of `verdict` ("normal", "anomalous", "error") is kept.
  bool wants(const std::string& verdict) const;
  // Keeps the evidence of result `seq` (to be recorded): `bytes` as <name>, the heatmap of
  // `inspected` (none for a file that was no image) and `result` (with its "seq" and "evidence"
  // set); returns the folder. Every file
  // is written atomically; an existing folder (a result inspected again after a crash) is
  // rewritten. Throws pv::Error naming the file.
  std::filesystem::path keep(std::uint64_t seq, const std::string& name,
                             std::span<const std::byte> bytes, const Inspected* inspected,
                             nlohmann::ordered_json result,
                             std::chrono::system_clock::time_point captured);
  // Deletes day folders past the age limit, then the oldest while over the size limit; at most
  // once a minute unless `now`.
  void enforce_retention(bool now = false);

 private:
  EvidenceArchive options_;
  std::string lane_;
  std::chrono::steady_clock::time_point checked_{};
};

}  // namespace pv::station
