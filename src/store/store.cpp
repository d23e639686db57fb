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

void check_resolution(const ReportResolution& r) {
  if (r.resolution != kFalseAlarm && r.resolution != kDefect) {
    throw Error("resolution must be '" + std::string(kFalseAlarm) + "' or '" + kDefect +
                "', got '" + printable(r.resolution, 40) + "'");
  }
  if (r.resolution == kDefect && r.defect.empty()) {
    throw Error("a defect resolution needs the defect's type");
  }
  if (r.resolution == kFalseAlarm && !r.defect.empty()) {
    throw Error("a false alarm has no defect type");
  }
  if (r.defect == "good") throw Error("'good' is no defect type: resolve it as a false alarm");
  if (r.resolution == kDefect) check_defect_type(r.defect);
  if (r.note.size() > 2000 || r.by.size() > 100) {
    throw Error("note or name too long (2000 and 100 bytes at most)");
  }
  check_text(r.note, "note");
  check_text(r.by, "name of who decided");
}

}  // namespace pv
