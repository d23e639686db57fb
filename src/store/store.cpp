// What both stores share: choosing one, and what they accept as an operator's decision.
#include <patchvec/store.h>

namespace pv {

std::unique_ptr<VectorStore> open_store(const StoreLocation& location,
                                        const std::filesystem::path& default_file) {
  if (!location.db.empty()) return open_postgres_store(location.db, location.exact);
  if (!location.file.empty()) return open_embedded_store(location.file);
  if (default_file.empty()) throw Error("say which store: --db URL or --store PATH");
  return open_embedded_store(default_file);
}

void check_resolution(const ReportResolution& r) {
  if (r.resolution != kFalseAlarm && r.resolution != kDefect) {
    throw Error("resolution must be '" + std::string(kFalseAlarm) + "' or '" + kDefect +
                "', got '" + r.resolution + "'");
  }
  if (r.resolution == kDefect && r.defect.empty()) {
    throw Error("a defect resolution needs the defect's type");
  }
  if (r.resolution == kFalseAlarm && !r.defect.empty()) {
    throw Error("a false alarm has no defect type");
  }
  if (r.defect == "good") throw Error("'good' is no defect type: resolve it as a false alarm");
  if (r.defect.size() > 100 || r.note.size() > 2000 || r.by.size() > 100) {
    throw Error("defect type, note or name too long (100, 2000 and 100 bytes at most)");
  }
}

}  // namespace pv
