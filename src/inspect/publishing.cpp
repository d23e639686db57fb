#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/log.h>
#include <patchvec/publishing.h>

#include "util/sha256.h"

namespace pv {
namespace {

std::string short_hash(const std::string& sha256) {
  return sha256.substr(0, 12);
}

std::string revision_name(const PublishedModel& published) {
  return published.category + " revision " + std::to_string(published.revision);
}

}  // namespace

std::vector<Publication> publish_model_files(ModelRegistry& registry,
                                             std::span<const std::filesystem::path> files,
                                             const ModelLoadOptions& options) {
  std::vector<std::string> categories;
  for (const auto& file : files) {
    categories.push_back(Model::load(file, options).info().category);  // throws naming the file
  }
  std::vector<Publication> out;
  for (std::size_t i = 0; i < files.size(); ++i) {
    // The bytes loaded above may have changed since: these are hashed and published, and a
    // service loads (and checks) them again before it serves them.
    const std::vector<std::byte> bytes = read_file(files[i]);
    Publication publication{.file = files[i]};
    publication.model =
        registry.publish(categories[i], bytes, files[i].filename().string(), &publication.added);
    out.push_back(std::move(publication));
  }
  return out;
}

namespace {

// The revision's file in `cache_dir`, fetched unless a file of its hash is there. Throws pv::Error
// when the database cannot give it (unreachable, or bytes that do not match their hash).
std::filesystem::path fetch(const ModelRegistry& registry, const PublishedModel& published,
                            const std::filesystem::path& cache_dir) {
  auto path = cache_dir / (published.sha256 + ".pvm");
  std::error_code error;
  if (std::filesystem::exists(path, error) && sha256_file_hex(path) == published.sha256) {
    return path;
  }
  const std::vector<std::byte> bytes = registry.content(published.category, published.revision);
  std::filesystem::create_directories(cache_dir);
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
  return path;
}

ServedModel load_fetched(const std::filesystem::path& file, const PublishedModel& published,
                         const ModelLoadOptions& options) {
  auto model = std::make_shared<const Model>(Model::load(file, options));
  if (model->info().category != published.category) {
    throw Error("it is a model of category " + model->info().category);
  }
  return {.model = std::move(model), .sha256 = published.sha256, .published = published};
}

std::string does_not_load(const ModelRegistry& registry, const PublishedModel& published,
                          const std::exception& e) {
  return "published model " + revision_name(published) + " (" + registry.location() +
         ") does not load: " + e.what();
}

}  // namespace

ServedModel load_published(const ModelRegistry& registry, const PublishedModel& published,
                           const std::filesystem::path& cache_dir,
                           const ModelLoadOptions& options) {
  try {
    return load_fetched(fetch(registry, published, cache_dir), published, options);
  } catch (const std::exception& e) {
    throw Error(does_not_load(registry, published, e));
  }
}

std::map<std::string, ServedModel> load_published_models(const ModelRegistry& registry,
                                                         const std::filesystem::path& cache_dir,
                                                         const ModelLoadOptions& options) {
  std::map<std::string, std::vector<PublishedModel>> revisions;  // newest last
  for (PublishedModel& p : registry.list(/*all_revisions=*/true)) {
    revisions[p.category].push_back(std::move(p));
  }
  if (revisions.empty()) {
    throw Error("no models are published in " + registry.location() +
                " (patchvec publish --db URL MODEL.pvm)");
  }
  std::map<std::string, ServedModel> models;
  for (auto& [category, list] : revisions) {
    std::string refused;
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
      try {
        models.emplace(category, load_published(registry, *it, cache_dir, options));
        log::info("loaded " + revision_name(*it) + " (sha256 " + short_hash(it->sha256) +
                  ") from " + registry.location());
        break;
      } catch (const Error& e) {
        log::warn(std::string(e.what()) + "; trying the revision before it");
        if (refused.empty()) refused = e.what();
      }
    }
    if (!models.contains(category)) {
      throw Error("no published revision of category " + category + " loads: " + refused);
    }
  }
  return models;
}

struct ModelFollower::Impl {
  ModelRegistry& registry;
  Inspector& inspector;
  FollowOptions options;
  std::set<std::pair<std::string, std::int64_t>> refused;  // logged once, never retried
  std::mutex check_mutex;                                  // one check at a time
  std::mutex stop_mutex;
  std::condition_variable stop_requested;
  bool stopping = false;
  std::thread thread;

  int check() {
    const std::lock_guard lock(check_mutex);
    int changed = 0;
    const auto served = inspector.models();
    for (const PublishedModel& newest : registry.list()) {
      const auto it = served.find(newest.category);
      if (it != served.end() && it->second.published &&
          it->second.published->revision >= newest.revision) {
        continue;
      }
      if (refused.contains({newest.category, newest.revision})) continue;
      std::filesystem::path file;
      try {
        file = fetch(registry, newest, options.cache_dir);
      } catch (const Error& e) {  // perhaps passing: tried again at the next check
        log::warn("cannot fetch published model " + revision_name(newest) + ": " + e.what());
        continue;
      }
      try {
        inspector.serve(load_fetched(file, newest, options.load));
        log::info("serving " + revision_name(newest) + " (sha256 " + short_hash(newest.sha256) +
                  ")");
        ++changed;
      } catch (const std::exception& e) {  // the file itself: refused for good
        refused.insert({newest.category, newest.revision});
        const bool previous = it != served.end() && it->second.published;
        log::warn(does_not_load(registry, newest, e) + "; " +
                  (previous
                       ? "still serving revision " + std::to_string(it->second.published->revision)
                       : std::string("the category stays unserved")));
      }
    }
    return changed;
  }

  // Sleeps up to `duration` unless stopped; true if stopped.
  bool sleep_for(std::chrono::milliseconds duration) {
    std::unique_lock lock(stop_mutex);
    return stop_requested.wait_for(lock, duration, [&] { return stopping; });
  }

  bool stopped() {
    const std::lock_guard lock(stop_mutex);
    return stopping;
  }

  void run() {
    using Clock = std::chrono::steady_clock;
    auto last_check = Clock::now();
    // The notification comes from the primary; a standby may show the row a little later: after
    // one, the check repeats for a while.
    auto recheck_until = Clock::now();
    bool connected = true;
    while (!stopped()) {
      bool due = false;
      try {
        // Short waits: stopping never waits long for the database.
        due = registry.wait_for_publish(std::chrono::milliseconds(500));
        if (!connected) log::info("following published models again (" + registry.location() + ")");
        connected = true;
      } catch (const Error& e) {
        if (connected) log::warn(std::string("following published models: ") + e.what());
        connected = false;
        if (sleep_for(std::chrono::seconds(1))) return;
        continue;
      }
      if (due) recheck_until = Clock::now() + std::chrono::seconds(10);
      if (!due && Clock::now() >= recheck_until &&
          Clock::now() - last_check < options.check_interval) {
        continue;
      }
      last_check = Clock::now();
      try {
        check();
      } catch (const Error& e) {
        log::warn(std::string("checking published models: ") + e.what());
      }
    }
  }
};

ModelFollower::ModelFollower(ModelRegistry& registry, Inspector& inspector, FollowOptions options)
    : impl_(new Impl{.registry = registry, .inspector = inspector, .options = std::move(options)}) {
  impl_->thread = std::thread([this] { impl_->run(); });
}

ModelFollower::~ModelFollower() {
  {
    const std::lock_guard lock(impl_->stop_mutex);
    impl_->stopping = true;
  }
  impl_->stop_requested.notify_all();
  impl_->thread.join();
}

int ModelFollower::check() {
  return impl_->check();
}

}  // namespace pv
