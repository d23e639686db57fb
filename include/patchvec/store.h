// Where images' embeddings, labels and verdicts live, and the similarity search over them.
//
// One interface, two implementations: the embedded store (a file, no server; the default) and
// PostgreSQL + pgvector. Image embeddings are pv::image_embedding() (embedder.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <patchvec/error.h>
#include <patchvec/split.h>
#include <patchvec/verdict.h>

namespace pv {

// Where a stored image came from: a dataset indexed whole (patchvec index), replaced by the next
// index of its category, or an image a user added one at a time (add-anomaly, an operator's
// decision, update), which re-indexing never removes. Recorded once, as the image's split:
// Split::kAdded is an added image, kTrain and kTest came with a dataset.
enum class ImageSource { kDataset, kAdded };

constexpr ImageSource image_source(Split split) {
  return split == Split::kAdded ? ImageSource::kAdded : ImageSource::kDataset;
}
// "dataset", "added": how stores of earlier forms spelled it.
constexpr const char* image_source_name(ImageSource source) {
  return source == ImageSource::kAdded ? "added" : "dataset";
}
// The source `name` spells; throws pv::Error naming `setting` for anything else.
ImageSource parse_image_source(std::string_view name, std::string_view setting);

// A report waits for an operator's decision (open) or has one (resolved).
enum class ReportStatus { kOpen, kResolved };

// "open", "resolved": the one string form (the stores, the CLI, the HTTP API).
constexpr const char* report_status_name(ReportStatus status) {
  return status == ReportStatus::kResolved ? "resolved" : "open";
}
// The status `name` spells; throws pv::Error ("status must be open or resolved, got ...").
ReportStatus parse_report_status(std::string_view name);

// What an operator decided about a report: the image is good after all, or a real defect of a
// named type.
enum class Resolution { kFalseAlarm, kDefect };

// "false_alarm", "defect": the one string form.
constexpr const char* resolution_name(Resolution resolution) {
  return resolution == Resolution::kDefect ? "defect" : "false_alarm";
}
// The resolution `name` spells; throws pv::Error ("resolution must be 'false_alarm' or
// 'defect', got ...").
Resolution parse_resolution(std::string_view name);

struct StoredImage {
  std::int64_t id = 0;  // assigned by the store
  std::string path;     // as it was indexed
  std::string category;
  Split split = Split::kTrain;  // kAdded: added one at a time (add_image() sets it), image_source()
  bool anomalous = false;       // the label
  std::string defect = "good";  // defect type; "good" for normal images
  std::optional<float> score;   // PatchCore image score, when it was scored
  Verdict verdict = Verdict::kUnknown;  // from that score; kUnknown if not scored or no thresholds
  std::vector<float> embedding;
};

struct Match {
  StoredImage image;      // without its embedding
  double similarity = 0;  // cosine similarity, 1 = same direction
};

struct MatchFilter {
  std::string category;           // empty: every category
  std::optional<bool> anomalous;  // only normal (false) or only anomalous (true) images
};

struct AnomalyReport {
  std::int64_t id = 0;  // assigned by the store
  std::string path;     // the image's name as given (a file path, an upload's name)
  std::string category;
  float score = 0;
  float threshold = 0;         // the image threshold it was judged against
  double best_similarity = 0;  // to the closest normal image
  std::string created;         // ISO 8601, UTC; set by the store when empty
  std::vector<Match> matches;  // what was shown: the nearest known defects
  std::string image;           // where the image's bytes are kept (for later decisions)
  // The operator's decision (resolve_report()):
  ReportStatus status = ReportStatus::kOpen;
  std::optional<Resolution> resolution;  // once resolved
  std::string defect;                    // the type an operator named (Resolution::kDefect)
  std::string note;
  std::string resolved_by;
  std::string resolved_at;  // ISO 8601, UTC
  bool applied = false;     // a false alarm already added to its model's memory bank
  // Given by a sender that may send the report twice (ReportSpool): a report whose key is stored
  // already is not stored again. Empty: none.
  std::string idempotency_key;
};

struct ReportResolution {
  Resolution resolution = Resolution::kFalseAlarm;
  std::string defect;  // required for Resolution::kDefect
  std::string note;
  std::string by;  // who decided
};

// A decided report, and the image its decision stored (resolve_report()).
struct ResolvedReport {
  AnomalyReport report;
  std::int64_t image_id = 0;  // the image the decision added to the store; 0: none
};

struct ReportQuery {
  std::string category;                // empty: every category
  std::optional<ReportStatus> status;  // nullopt: both
  std::string since;  // created at or after this UTC time, "YYYY-MM-DD[THH:MM[:SS]]"; empty: all
  std::size_t limit = 50;
};

// Throws pv::Error unless `defect` is a defect type a store keeps: 1 to 100 bytes of clean text
// (text_problem(): one line of UTF-8, no control characters), and not "good".
void check_defect_type(const std::string& defect);

// Throws pv::Error unless the resolution is a false alarm (without a defect type) or a defect with
// one (check_defect_type()); note at most 2000 bytes, by at most 100, both clean text.
void check_resolution(const ReportResolution& resolution);

// A report, image or other row that does not exist (HTTP 404), and a change that contradicts
// what is stored (HTTP 409): resolving a report twice.
class NotFoundError : public Error {
 public:
  using Error::Error;
};
class ConflictError : public Error {
 public:
  using Error::Error;
};
// The ConflictError of deciding `report` again: "report 7 was resolved already (defect by ann
// at ...)".
ConflictError already_resolved(const AnomalyReport& report);

// The store cannot be reached for this now (server down, connection lost, no primary for a
// write): the same call may succeed later (HTTP 503).
class UnavailableError : public Error {
 public:
  using Error::Error;
};

// What every store's calls promise. Thread-safety: every member function may be called from
// several threads at once (the implementations serialise what must be). Changes are atomic: all
// of a call's rows or none. Several stores, in one process or in many, may open the same
// location: every call sees each change committed before it began (the embedded store re-reads
// its file when another writer has replaced it, e.g. `patchvec index` while `patchvec serve`
// runs). Both interfaces below are implemented by the embedded store and PostgreSQL
// (tests/store/conformance.h holds both to every contract).

// The images of each category with their embeddings, and the similarity search over them.
class ImageIndex {
 public:
  virtual ~ImageIndex() = default;

  // Replaces the dataset images of `category` (splits kTrain and kTest) with `images` (ids are
  // assigned; re-indexing never duplicates). Images added with add_image() stay. Throws pv::Error
  // for an image of split kAdded among `images`. Returns how many were stored.
  virtual std::size_t replace_dataset(const std::string& category,
                                      std::span<const StoredImage> images) = 0;
  // Adds one image a user labelled, stored with split kAdded whatever `image` says; returns its
  // id.
  virtual std::int64_t add_image(const StoredImage& image) = 0;

  // The `k` stored images most similar to `query` (cosine), best first; equal similarities in id
  // order. Exact search.
  virtual std::vector<Match> nearest(std::span<const float> query, std::size_t k,
                                     const MatchFilter& filter = {}) const = 0;

  virtual std::optional<StoredImage> image(std::int64_t id) const = 0;
  // Every stored image of `category` (both sources) with its embedding, in id order.
  virtual std::vector<StoredImage> images(const std::string& category) const = 0;
  virtual std::size_t image_count(const std::string& category = {}) const = 0;

  // After bulk loads: builds the search index (PostgreSQL: HNSW, cosine). Until then searches
  // are exact scans. Returns the seconds it took.
  virtual double build_indexes() { return 0; }
};

// Anomaly reports and the operators' decisions on them.
class ReportLog {
 public:
  virtual ~ReportLog() = default;

  // Stores a new, open report (its id and status are set here, `created` when it is empty) and
  // returns its id; with an idempotency key stored already, that report's id instead.
  virtual std::int64_t add_report(const AnomalyReport& report) = 0;
  // Newest first.
  virtual std::vector<AnomalyReport> reports(const ReportQuery& query) const = 0;
  virtual std::optional<AnomalyReport> report(std::int64_t id) const = 0;
  // Records the decision on an open report, with the time, and stores `image` (when given) as
  // ImageIndex::add_image() would, in one transaction: of decisions racing on one report, one
  // wins and the others change nothing. Throws NotFoundError for an unknown id, ConflictError for
  // a report resolved already, pv::Error for a bad resolution or image.
  virtual ResolvedReport resolve_report(std::int64_t id, const ReportResolution& resolution,
                                        const std::optional<StoredImage>& image) = 0;
  // Marks false alarms whose images joined their model's memory bank (patchvec update).
  virtual void mark_applied(std::span<const std::int64_t> report_ids) = 0;
};

// A store: both of the above in one place (a file, or a database), and its health.
class VectorStore : public ImageIndex, public ReportLog {
 public:
  // Throws pv::Error if the store cannot answer now (server down, file unreadable), within a few
  // seconds whatever the server does (PostgreSQL: 2 s for the answer, connect_timeout to
  // connect): what a readiness check asks.
  virtual void ping() const = 0;
  virtual std::string kind() const = 0;      // "embedded" or "postgresql", for people and pages
  virtual std::string location() const = 0;  // for messages and logs, not for clients:
                                             // "embedded store models/store.pvs"
};

// A PostgreSQL + pgvector store. `url` is a libpq connection string or URL
// (postgresql://user:password@host:port/database); what it leaves out comes from the PG*
// environment variables. Creates or migrates the schema. `exact`: nearest() scans every row
// (the same ranking as the embedded store) instead of using the HNSW index. Throws pv::Error for an
// unreachable server, refused credentials, a database without the vector extension (and no right to
// create it), or a schema of another version. Calls from several threads run on up to 4
// connections at once (opened when needed), so concurrent searches overlap.
// A URL of several hosts (postgresql://h1:5432,h2:5432/db: a primary and its standbys) is used
// as libpq's target_session_attrs choose: searches and other reads on prefer-standby (a standby
// if one answers, else the primary), changes on read-write (the primary, found again after a
// failover), each with its own 4 connections; the store opens while no primary answers, and a
// change then throws UnavailableError. Reads on a standby see changes after replication (usually
// milliseconds). Whatever target_session_attrs the URL says is overridden.
std::unique_ptr<VectorStore> open_postgres_store(const std::string& url, bool exact = false);

// Where a store is, as the CLI's --db/--store/--exact and the service's options say it.
struct StoreLocation {
  std::string db;              // PostgreSQL URL; empty: the embedded store
  std::filesystem::path file;  // the embedded store's file; empty: the caller's default
  bool exact = false;          // PostgreSQL: exact scans instead of HNSW
  // For reads (reports, search, a copy's source): an embedded store file that does not exist is
  // an error (a mistyped path), not an empty store.
  bool must_exist = false;
};

// PostgreSQL when `location.db` is set, else the embedded store in `location.file`, else in
// `default_file`. Throws pv::Error when neither names a store, and as the two openers below.
std::unique_ptr<VectorStore> open_store(const StoreLocation& location,
                                        const std::filesystem::path& default_file = {});

// The embedded store in `path` (created on the first change). Every change rewrites the file
// atomically under a lock file, so processes can share it (index in one, search in another).
// Throws pv::Error naming the file if it exists but is unreadable, damaged or of another version.
std::unique_ptr<VectorStore> open_embedded_store(const std::filesystem::path& path);

}  // namespace pv
