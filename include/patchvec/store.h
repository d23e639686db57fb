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
#include <vector>

namespace pv {

// Where a stored image came from: a dataset indexed whole (patchvec index), replaced by the next
// index of its category, or an image a user added one at a time (add-anomaly), which re-indexing
// never removes.
inline constexpr const char* kSourceDataset = "dataset";
inline constexpr const char* kSourceAdded = "added";

struct StoredImage {
  std::int64_t id = 0;  // assigned by the store
  std::string path;     // as it was indexed
  std::string category;
  std::string source = kSourceDataset;  // set by the store: replace_dataset() or add_image()
  std::string split = "train";          // "train", "test", or "added" (add-anomaly)
  bool anomalous = false;               // the label
  std::string defect = "good";          // defect type; "good" for normal images
  std::optional<float> score;           // PatchCore image score, when it was scored
  std::string verdict;  // "normal" / "anomalous" from that score; empty if not scored
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
  std::string path;
  std::string category;
  float score = 0;
  float threshold = 0;         // the image threshold it was judged against
  double best_similarity = 0;  // to the closest normal image
  std::string created;         // ISO 8601, UTC; set by the store when empty
  std::vector<Match> matches;  // what was shown: the nearest known defects
};

// Thread-safety: every member function may be called from several threads at once (the
// implementations serialise what must be). Changes are atomic: all of a call's rows or none.
class VectorStore {
 public:
  virtual ~VectorStore() = default;

  // Replaces the dataset images of `category` (source kSourceDataset) with `images`, which are
  // stored with that source (ids are assigned; re-indexing never duplicates). Images added with
  // add_image() stay. Returns how many were stored.
  virtual std::size_t replace_dataset(const std::string& category,
                                      std::span<const StoredImage> images) = 0;
  // Adds one image a user labelled (source kSourceAdded, whatever `image` says); returns its id.
  virtual std::int64_t add_image(const StoredImage& image) = 0;

  // Replaces the category's memory-bank vectors (`vectors`: rows x dim). The embedded store keeps
  // none (the model file holds the bank) and returns 0; PostgreSQL stores them for
  // patch-level search in SQL. Returns how many were stored.
  virtual std::size_t replace_patches(const std::string& category, std::span<const float> vectors,
                                      std::size_t dim) = 0;

  // The `k` stored images most similar to `query` (cosine), best first; equal similarities in id
  // order. Exact search.
  virtual std::vector<Match> nearest(std::span<const float> query, std::size_t k,
                                     const MatchFilter& filter = {}) const = 0;

  virtual std::int64_t add_report(const AnomalyReport& report) = 0;
  // Newest first; `category` empty for all; `since`: only reports created at or after this UTC
  // time, "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS" (empty for all).
  virtual std::vector<AnomalyReport> reports(const std::string& category, std::size_t limit,
                                             const std::string& since = {}) const = 0;

  // After bulk loads: builds the search indexes (PostgreSQL: HNSW, cosine for images and L2 for
  // patches). Until then searches are exact scans. Returns the seconds it took.
  virtual double build_indexes() { return 0; }

  virtual std::optional<StoredImage> image(std::int64_t id) const = 0;
  virtual std::size_t image_count(const std::string& category = {}) const = 0;

  // Throws pv::Error if the store cannot answer now (server down, file unreadable): what a
  // readiness check asks.
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
// create it), or a schema of another version.
std::unique_ptr<VectorStore> open_postgres_store(const std::string& url, bool exact = false);

// The embedded store in `path` (created on the first change). Every change rewrites the file
// atomically under a lock file, so processes can share it (index in one, search in another).
// Throws pv::Error naming the file if it exists but is unreadable, damaged or of another version.
std::unique_ptr<VectorStore> open_embedded_store(const std::filesystem::path& path);

}  // namespace pv
