// What both stores share: choosing one, and what they accept as an operator's decision.
#include <patchvec/store.h>
#include <patchvec/text.h>

namespace pv {

std::unique_ptr<VectorStore> open_store(const StoreLocation& location,
                                        const std::filesystem::path& default_file) {
  if (!location.db.empty()) return open_postgres_store(location.db, location.exact);
  const std::filesystem::path& file = location.file.empty() ? default_file : location.file;
  if (file.empty()) throw Error("say which store: --db URL or --store PATH");
  std::error_code error;
  if (location.must_exist && !std::filesystem::exists(file, error)) {
    throw Error("no store at " + file.string() + " (patchvec index creates one; --store PATH)");
  }
  return open_embedded_store(file);
}

namespace {

void check_text(const std::string& text, const char* field) {
  if (const std::string_view problem = text_problem(text); !problem.empty()) {
    throw Error(std::string("the ") + field + " " + std::string(problem) +
                " (one line of UTF-8 text)");
  }
}

}  // namespace

void check_defect_type(const std::string& defect) {
  if (defect.empty() || defect.size() > 100) {
    throw Error("a defect type is 1 to 100 bytes, got " + std::to_string(defect.size()));
  }
  if (defect == "good") throw Error("'good' is no defect type");
  check_text(defect, "defect type");
}

ImageSource parse_image_source(std::string_view name, std::string_view setting) {
  for (const ImageSource s : {ImageSource::kDataset, ImageSource::kAdded}) {
    if (name == image_source_name(s)) return s;
  }
  throw Error(std::string(setting) + " is '" + printable(name, 40) +
              "': expected dataset or added");
}

ReportStatus parse_report_status(std::string_view name) {
  for (const ReportStatus s : {ReportStatus::kOpen, ReportStatus::kResolved}) {
    if (name == report_status_name(s)) return s;
  }
  throw Error("status must be open or resolved, got '" + printable(name, 40) + "'");
}

Resolution parse_resolution(std::string_view name) {
  for (const Resolution r : {Resolution::kFalseAlarm, Resolution::kDefect}) {
    if (name == resolution_name(r)) return r;
  }
  throw Error("resolution must be 'false_alarm' or 'defect', got '" + printable(name, 40) + "'");
}

ConflictError already_resolved(const AnomalyReport& r) {
  return ConflictError("report " + std::to_string(r.id) + " was resolved already (" +
                       (r.resolution ? resolution_name(*r.resolution) : "?") + " by " +
                       r.resolved_by + " at " + r.resolved_at + ")");
}

void check_resolution(const ReportResolution& r) {
  const bool defect = r.resolution == Resolution::kDefect;
  if (defect && r.defect.empty()) throw Error("a defect resolution needs the defect's type");
  if (!defect && !r.defect.empty()) throw Error("a false alarm has no defect type");
  if (r.defect == "good") throw Error("'good' is no defect type: resolve it as a false alarm");
  if (defect) check_defect_type(r.defect);
  if (r.note.size() > 2000 || r.by.size() > 100) {
    throw Error("note or name too long (2000 and 100 bytes at most)");
  }
  check_text(r.note, "note");
  check_text(r.by, "name of who decided");
}

}  // namespace pv
