// The embedded store: one file holding every image's metadata and embedding, and the reports.
//
// The container of util/container.h (shared with .pvm models), version 1:
//   magic "PVSTORE\0"; field: the dimension of the embeddings (0 while empty)
//   header   JSON: images (without embeddings), reports, next ids
//   body     embeddings, float32, one row per image in header order
//
// Small enough to rewrite whole on every change (10,000 images x 1536 floats = 61 MB), which
// keeps changes atomic (temporary file + rename) without a journal.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <type_traits>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/store.h>

#include "store/forms.h"
#include "util/clock.h"
#include "util/container.h"
#include "util/json_numbers.h"

namespace pv {
namespace {

constexpr container::Format kFormat{
    .magic = std::string_view("PVSTORE\0", 8), .version = 1, .noun = "store"};

nlohmann::json image_json(const StoredImage& image) {
  nlohmann::json j = {{"id", image.id},
                      {"path", image.path},
                      {"category", image.category},
                      {"split", split_name(image.split)},
                      {"anomalous", image.anomalous},
                      {"defect", image.defect},
                      {"verdict", verdict_name(image.verdict)}};
  j["score"] = image.score ? nlohmann::json(*image.score) : nlohmann::json(nullptr);
  return j;
}

StoredImage image_from(const nlohmann::json& j) {
  StoredImage image;
  image.id = json_integer<std::int64_t>(j.at("id"), "image id");
  image.path = j.at("path").get<std::string>();
  image.category = j.at("category").get<std::string>();
  image.split = parse_split(j.at("split").get<std::string>(), "image split");
  // One form of the file also said where the image came from, which the split says now (and
  // said alone before that form).
  if (j.contains("source") &&
      parse_image_source(j.at("source").get<std::string>(), "source") == ImageSource::kAdded) {
    image.split = Split::kAdded;
  }
  image.anomalous = j.at("anomalous").get<bool>();
  image.defect = j.at("defect").get<std::string>();
  image.verdict = store::stored_verdict(j.at("verdict").get<std::string>());
  if (!j.at("score").is_null()) image.score = json_real<float>(j.at("score"), "image score");
  return image;
}

// The next id of `what` ("image", "report"), taken from `next`. The last id a store can give is
// 2^63 - 2 (`next` stays a valid "behind every stored id" after it): at the limit it refuses,
// and the store stays as it was.
std::int64_t take_id(std::int64_t& next, const char* what, const std::string& where) {
  if (next >= std::numeric_limits<std::int64_t>::max()) {
    throw Error(where + ": no " + what + " ids left (the next would be " + std::to_string(next) +
                ")");
  }
  return next++;
}

// Everything in the file, in memory; embeddings as given (a round trip changes nothing).
struct Contents {
  std::vector<StoredImage> images;
  std::vector<AnomalyReport> reports;
  std::int64_t next_image_id = 1;
  std::int64_t next_report_id = 1;
  std::size_t dim = 0;
};

Contents decode(std::span<const std::byte> bytes, const std::string& where) {
  const container::Preamble preamble = container::read_preamble(bytes, kFormat, where + ": ");
  container::check_checksum(bytes, bytes.size() - container::kChecksumBytes, where + ": ");
  Contents c;
  c.dim = preamble.field;
  try {
    const auto header = nlohmann::json::parse(preamble.header);
    for (const auto& j : header.at("images")) c.images.push_back(image_from(j));
    for (const auto& j : header.at("reports")) c.reports.push_back(store::report_from(j));
    c.next_image_id = json_integer<std::int64_t>(header.at("next_image_id"), "next_image_id");
    c.next_report_id = json_integer<std::int64_t>(header.at("next_report_id"), "next_report_id");
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": corrupt header (" + e.what() + ")");
  } catch (const Error& e) {
    throw Error(where + ": corrupt header (" + e.what() + ")");
  }
  // The checksum proves the file unchanged, not valid: every field is checked before use.
  if (!c.images.empty() && c.dim == 0) throw Error(where + ": images without embeddings");
  if (c.dim > (1u << 20)) throw Error(where + ": embedding dimension " + std::to_string(c.dim));
  std::int64_t last_id = 0;
  for (const StoredImage& image : c.images) {
    if (image.id <= last_id) throw Error(where + ": image ids out of order or repeated");
    last_id = image.id;
  }
  std::int64_t last_report = 0;
  for (const AnomalyReport& r : c.reports) {
    if (r.id <= last_report) throw Error(where + ": report ids out of order or repeated");
    last_report = r.id;
  }
  if (c.next_image_id <= last_id || c.next_report_id <= last_report) {
    throw Error(where + ": next ids behind the stored ones");
  }
  const std::size_t available = bytes.size() - container::kChecksumBytes - preamble.body_begin;
  // No overflow: dim <= 2^20 and there are fewer images than bytes in the header.
  if (available != c.images.size() * c.dim * sizeof(float)) {
    throw Error(where + ": size does not match its header");
  }
  const std::byte* data = bytes.data() + preamble.body_begin;
  for (std::size_t i = 0; i < c.images.size(); ++i) {
    auto& embedding = c.images[i].embedding;
    embedding.resize(c.dim);
    std::memcpy(embedding.data(), data + i * c.dim * sizeof(float), c.dim * sizeof(float));
    for (const float value : embedding) {
      if (!std::isfinite(value)) {
        throw Error(where + ": image " + std::to_string(c.images[i].id) +
                    " has a non-finite embedding");
      }
    }
  }
  return c;
}

void write_contents(const std::filesystem::path& path, const Contents& c) {
  nlohmann::json images = nlohmann::json::array();
  for (const StoredImage& image : c.images) images.push_back(image_json(image));
  nlohmann::json reports = nlohmann::json::array();
  for (const AnomalyReport& r : c.reports) reports.push_back(store::report_json(r));
  const std::string header = nlohmann::json({{"images", images},
                                             {"reports", reports},
                                             {"next_image_id", c.next_image_id},
                                             {"next_report_id", c.next_report_id}})
                                 .dump();
  std::vector<std::byte> bytes = container::layout(kFormat, static_cast<std::uint32_t>(c.dim),
                                                   header, c.images.size() * c.dim * sizeof(float));
  std::byte* data = bytes.data() + container::kPreambleBytes + header.size();
  for (const StoredImage& image : c.images) {
    std::memcpy(data, image.embedding.data(), c.dim * sizeof(float));
    data += c.dim * sizeof(float);
  }
  container::write(path, bytes);
}

// An exclusive advisory lock on <store>.lock for one read-modify-write, across processes.
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& store) {
    const std::string path = store.string() + ".lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error("cannot create lock file " + path + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX) != 0) {
      ::close(fd_);
      throw Error("cannot lock " + path + ": " + std::strerror(errno));
    }
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() { ::close(fd_); }  // closing releases the lock

 private:
  int fd_ = -1;
};

double dot(const float* a, const float* b, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return s;
}

double norm(std::span<const float> v) {
  return std::sqrt(dot(v.data(), v.data(), v.size()));
}

class EmbeddedStore final : public VectorStore {
 public:
  explicit EmbeddedStore(std::filesystem::path path) : path_(std::move(path)) {
    set_contents(load());
  }

  std::size_t replace_dataset(const std::string& category,
                              std::span<const StoredImage> images) override {
    store::check_dataset_images(images);
    return change([&](Contents& c) {
      std::erase_if(c.images, [&](const StoredImage& i) {
        return i.category == category && image_source(i.split) == ImageSource::kDataset;
      });
      for (StoredImage image : images) {
        image.category = category;
        append(c, std::move(image));
      }
      return images.size();
    });
  }

  std::int64_t add_image(const StoredImage& image) override {
    return change([&](Contents& c) {
      StoredImage added = image;
      added.split = Split::kAdded;
      return append(c, std::move(added));
    });
  }

  std::vector<Match> nearest(std::span<const float> query, std::size_t k,
                             const MatchFilter& filter) const override {
    const std::lock_guard guard(mutex_);
    refresh();
    check_dimension(contents_, query.size());
    const double query_norm = norm(query);
    // Rank (similarity, index) pairs; only the k winners are copied out, without embeddings.
    std::vector<std::pair<double, std::size_t>> scored;
    for (std::size_t i = 0; i < contents_.images.size(); ++i) {
      const StoredImage& image = contents_.images[i];
      if (!filter.category.empty() && image.category != filter.category) continue;
      if (filter.anomalous && image.anomalous != *filter.anomalous) continue;
      const double denominator = query_norm * norms_[i];
      scored.emplace_back(
          denominator > 0 ? dot(query.data(), image.embedding.data(), query.size()) / denominator
                          : 0.0,
          i);
    }
    const auto better = [&](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first
                                : contents_.images[a.second].id < contents_.images[b.second].id;
    };
    const std::size_t n = std::min(k, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(n), scored.end(),
                      better);
    std::vector<Match> matches;
    for (std::size_t r = 0; r < n; ++r) {
      const StoredImage& image = contents_.images[scored[r].second];
      Match m{.similarity = scored[r].first};
      m.image = image;
      m.image.embedding.clear();
      matches.push_back(std::move(m));
    }
    return matches;
  }

  std::int64_t add_report(const AnomalyReport& report) override {
    return change([&](Contents& c) {
      if (!report.idempotency_key.empty()) {
        for (const AnomalyReport& r : c.reports) {
          if (r.idempotency_key == report.idempotency_key) return r.id;
        }
      }
      AnomalyReport r = report;
      r.id = take_id(c.next_report_id, "report", location());
      if (r.created.empty()) r.created = utc_now();
      r.status = ReportStatus::kOpen;
      r.resolution.reset();
      r.defect = r.note = r.resolved_by = r.resolved_at = "";
      r.applied = false;
      c.reports.push_back(std::move(r));
      return c.reports.back().id;
    });
  }

  std::vector<AnomalyReport> reports(const ReportQuery& query) const override {
    const std::lock_guard guard(mutex_);
    refresh();
    std::vector<AnomalyReport> out;
    for (auto it = contents_.reports.rbegin();
         it != contents_.reports.rend() && out.size() < query.limit; ++it) {
      // ISO 8601 texts in UTC order like the times they name.
      if ((query.category.empty() || it->category == query.category) &&
          (!query.status || it->status == *query.status) && it->created >= query.since) {
        out.push_back(*it);
      }
    }
    return out;
  }

  std::optional<AnomalyReport> report(std::int64_t id) const override {
    const std::lock_guard guard(mutex_);
    refresh();
    for (const AnomalyReport& r : contents_.reports) {
      if (r.id == id) return r;
    }
    return std::nullopt;
  }

  ResolvedReport resolve_report(std::int64_t id, const ReportResolution& resolution,
                                const std::optional<StoredImage>& image) override {
    check_resolution(resolution);
    return change([&](Contents& c) {
      for (AnomalyReport& r : c.reports) {
        if (r.id != id) continue;
        if (r.status == ReportStatus::kResolved) throw already_resolved(r);
        ResolvedReport out;
        if (image) {
          StoredImage added = *image;
          added.split = Split::kAdded;
          out.image_id = append(c, std::move(added));  // may throw: nothing changed yet
        }
        r.status = ReportStatus::kResolved;
        r.resolution = resolution.resolution;
        r.defect = resolution.defect;
        r.note = resolution.note;
        r.resolved_by = resolution.by;
        r.resolved_at = utc_now();
        out.report = r;
        return out;
      }
      throw NotFoundError("no report " + std::to_string(id) + " in " + location());
    });
  }

  void mark_applied(std::span<const std::int64_t> report_ids) override {
    change([&](Contents& c) {
      for (AnomalyReport& r : c.reports) {
        if (std::find(report_ids.begin(), report_ids.end(), r.id) != report_ids.end())
          r.applied = true;
      }
      return 0;
    });
  }

  std::optional<StoredImage> image(std::int64_t id) const override {
    const std::lock_guard guard(mutex_);
    refresh();
    for (const StoredImage& image : contents_.images) {
      if (image.id == id) return image;
    }
    return std::nullopt;
  }

  std::vector<StoredImage> images(const std::string& category) const override {
    const std::lock_guard guard(mutex_);
    refresh();
    std::vector<StoredImage> out;
    for (const StoredImage& image : contents_.images) {
      if (image.category == category) out.push_back(image);
    }
    return out;
  }

  std::size_t image_count(const std::string& category) const override {
    const std::lock_guard guard(mutex_);
    refresh();
    return static_cast<std::size_t>(std::count_if(
        contents_.images.begin(), contents_.images.end(),
        [&](const StoredImage& i) { return category.empty() || i.category == category; }));
  }

  void ping() const override {
    std::error_code error;
    if (!std::filesystem::exists(path_, error)) {
      if (error) throw Error(location() + ": " + error.message());
      return;  // nothing stored yet
    }
    std::ifstream probe(path_, std::ios::binary);
    if (!probe) throw Error(location() + " cannot be read");
  }

  std::string kind() const override { return "embedded"; }
  std::string location() const override { return "embedded store " + path_.string(); }

 private:
  // The file's identity: writers replace it by rename, so a new inode, size or time means
  // another writer committed a change.
  struct FileStamp {
    bool exists = false;
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    std::int64_t modified_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };

  FileStamp stamp() const {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return {};
    return {true, st.st_dev, st.st_ino, st.st_size,
            std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec};
  }

  // Reads the file as it is now, and remembers which version that was. A file that changes
  // while it is read is caught by the next call (its stamp differs again).
  Contents load() const {
    loaded_ = stamp();
    if (!loaded_.exists) return {};
    const std::vector<std::byte> bytes = read_file(path_);
    return decode(bytes, "store " + path_.string());
  }

  // Before answering: the newest committed contents. Requires mutex_.
  void refresh() const {
    if (stamp() == loaded_) return;
    set_contents(load());
  }

  // Temporary files of writers that died before their rename (a killed index). Whoever holds the
  // lock is the only writer, so every temporary file of this store is stale now.
  void remove_stale_temporaries() const {
    const std::string prefix = path_.filename().string() + ".tmp-";
    const std::filesystem::path folder =
        path_.parent_path().empty() ? std::filesystem::path(".") : path_.parent_path();
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with(prefix) &&
          name.find_first_not_of("0123456789-", prefix.size()) == std::string::npos) {
        std::filesystem::remove(entry.path(), error);
      }
    }
  }

  void set_contents(Contents contents) const {
    contents_ = std::move(contents);
    norms_.clear();
    for (const StoredImage& image : contents_.images) norms_.push_back(norm(image.embedding));
  }

  void check_dimension(const Contents& c, std::size_t dim) const {
    if (c.dim != 0 && !c.images.empty() && dim != c.dim) {
      throw Error("store " + path_.string() + " holds " + std::to_string(c.dim) +
                  "-dimensional embeddings, got " + std::to_string(dim) +
                  " (a model with another backbone?)");
    }
  }

  std::int64_t append(Contents& c, StoredImage image) const {
    if (c.images.empty()) c.dim = image.embedding.size();
    check_dimension(c, image.embedding.size());
    if (image.embedding.empty()) throw Error(location() + ": an image without an embedding");
    for (const float value : image.embedding) {
      if (!std::isfinite(value))
        throw Error(location() + ": a non-finite embedding for " + image.path);
    }
    image.id = take_id(c.next_image_id, "image", location());
    c.images.push_back(std::move(image));
    return c.images.back().id;
  }

  // Read the newest file under the lock, apply `edit`, write it back: all or nothing.
  template <typename Edit>
  std::invoke_result_t<Edit&, Contents&> change(Edit edit) {
    const std::lock_guard guard(mutex_);
    if (!path_.parent_path().empty()) std::filesystem::create_directories(path_.parent_path());
    const FileLock lock(path_);
    remove_stale_temporaries();
    Contents fresh = load();
    auto result = edit(fresh);
    write_contents(path_, fresh);
    loaded_ = stamp();
    set_contents(std::move(fresh));
    return result;
  }

  std::filesystem::path path_;
  mutable std::mutex mutex_;
  // A cache of the file: the version read last, refreshed by every call when it changed.
  mutable FileStamp loaded_;
  mutable Contents contents_;
  mutable std::vector<double> norms_;  // of each image's embedding, for the cosine
};

}  // namespace

std::unique_ptr<VectorStore> open_embedded_store(const std::filesystem::path& path) {
  return std::make_unique<EmbeddedStore>(path);
}

}  // namespace pv
