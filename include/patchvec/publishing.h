// Models published to a database, and served from it: what `patchvec publish` does, and what
// keeps an inspection service on the newest revision of every category (model_registry.h holds
// the rows; this is the part that loads and checks models).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include <patchvec/inspector.h>
#include <patchvec/model.h>
#include <patchvec/model_registry.h>

namespace pv {

struct Publication {
  std::filesystem::path file;
  PublishedModel model;
  bool added = false;  // false: the file is the category's newest revision already
};

// Loads every file first (a file that does not load is refused, naming it, before anything is
// published), then publishes each as its category's next revision. Results in file order.
std::vector<Publication> publish_model_files(ModelRegistry& registry,
                                             std::span<const std::filesystem::path> files,
                                             const ModelLoadOptions& options = {});

// One published revision, loaded: its bytes (checked against the recorded SHA-256) are written to
// `cache_dir`/<sha256>.pvm unless a file of that hash is there already, then loaded and validated
// like any model file. Throws pv::Error naming the category and revision when it is missing,
// damaged, not a valid model, or of another category.
ServedModel load_published(const ModelRegistry& registry, const PublishedModel& published,
                           const std::filesystem::path& cache_dir,
                           const ModelLoadOptions& options = {});

// Every category's newest revision that loads (a damaged revision is skipped with a warning and
// the one before it tried). Throws pv::Error when nothing is published or a category has no
// revision that loads.
std::map<std::string, ServedModel> load_published_models(const ModelRegistry& registry,
                                                         const std::filesystem::path& cache_dir,
                                                         const ModelLoadOptions& options = {});

struct FollowOptions {
  std::filesystem::path cache_dir;                   // as load_published()
  ModelLoadOptions load;                             // how new revisions are loaded
  std::chrono::milliseconds check_interval{30'000};  // a full check besides notifications
};

// Keeps `inspector` on the newest revisions in `registry`: a thread LISTENs for publications
// (and checks every check_interval, and after a lost connection) and serves each new revision
// once it loads (Inspector::serve() swaps it in between requests). A revision whose file does not
// load is logged once and refused, and the previous one stays; one the database cannot give now
// (unreachable, bytes that do not match their hash) is tried again at the next check. The cache
// keeps every revision fetched (files named by hash: safe to delete). Give each process a cache
// of its own. Stops (and joins) on destruction.
// `registry` and `inspector` must outlive it; nothing else may call registry.wait_for_publish().
class ModelFollower {
 public:
  ModelFollower(ModelRegistry& registry, Inspector& inspector, FollowOptions options);
  ~ModelFollower();
  ModelFollower(const ModelFollower&) = delete;
  ModelFollower& operator=(const ModelFollower&) = delete;

  // Checks now, on the calling thread (what the thread does on a notification). Returns how
  // many categories changed. Throws pv::Error when the database cannot be read.
  int check();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pv
