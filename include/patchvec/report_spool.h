// Anomaly reports kept on local disk while the store cannot take them (no PostgreSQL primary
// answers), and written once it can: a report is never lost, and never stored twice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>

#include <patchvec/store.h>

namespace pv {

// Thread-safety: every member function may be called from several threads at once. Several
// processes must not share one folder.
class ReportSpool {
 public:
  // Keeps reports in `dir` (created when the first one comes), one file each.
  explicit ReportSpool(std::filesystem::path dir);

  // Stores `report` with a new idempotency key and returns its id; when the store is unavailable
  // (UnavailableError), keeps it in the spool instead (written and fsync'd before this returns)
  // and returns nullopt. Other errors are thrown as they are.
  std::optional<std::int64_t> add(ReportLog& store, AnomalyReport report);

  // Stores the kept reports, oldest first, each removed from the spool once stored (a report sent
  // twice is stored once: its key). Stops at the first UnavailableError; returns how many were
  // stored. A file that is no report is moved aside (<name>.bad) with a warning.
  std::size_t flush(ReportLog& store);

  std::size_t pending() const;  // reports waiting in the spool
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  mutable std::mutex mutex_;  // guards the folder's listing against a report being added
  std::mutex flush_mutex_;    // one flush at a time; adds do not wait for it
};

}  // namespace pv
