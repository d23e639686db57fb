#include "patchcore/memory_bank.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include <ATen/ATen.h>
#include <fcntl.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/interrupt.h>
#include <patchvec/log.h>
#include <patchvec/stopwatch.h>

#include "sampling/k_center_greedy.h"
#include "sampling/random_projection.h"
#include "util/progress.h"

namespace pv::patchcore {
namespace {

// Patches that do not fit the budget: an anonymous temporary file, unlinked at once so that
// nothing is left behind whatever happens to the process.
class SpillFile {
 public:
  explicit SpillFile(const std::filesystem::path& folder) {
    std::string pattern = (folder / "patchvec-patches-XXXXXX").string();
    fd_ = ::mkstemp(pattern.data());
    if (fd_ < 0) {
      throw Error("cannot create a temporary file in " + folder.string() + ": " +
                  std::strerror(errno) + " (set TMPDIR or --max-memory)");
    }
    ::unlink(pattern.c_str());
    folder_ = folder;
  }
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;
  ~SpillFile() { ::close(fd_); }

  void append(std::span<const std::byte> bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        throw Error("cannot write training patches to " + folder_.string() + ": " +
                    std::strerror(errno));
      done += static_cast<std::size_t>(n);
    }
  }

  void read(std::int64_t offset, std::span<std::byte> out) const {
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t n =
          ::pread(fd_, out.data() + done, out.size() - done, offset + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw Error("cannot read training patches back from " + folder_.string());
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_ = -1;
  std::filesystem::path folder_;
};

std::filesystem::path temp_folder(const std::filesystem::path& requested) {
  if (!requested.empty()) return requested;
  if (const char* tmp = std::getenv("TMPDIR")) return tmp;
  return std::filesystem::temp_directory_path();
}

}  // namespace

struct MemoryBankBuilder::Impl {
  BankOptions options;
  std::int64_t total = 0;
  std::int64_t dim = 0;
  std::int64_t added = 0;
  bool select = false;  // coreset_ratio < 1
  std::optional<sampling::RandomProjection> projection;
  at::Tensor projected;              // total x d, bfloat16 (selection rounds it further)
  at::Tensor patches;                // total x dim float32, when they fit the budget
  std::unique_ptr<SpillFile> spill;  // otherwise
  double project_seconds = 0;
  // The fast method's whole selection, made with the first cross-fitting bank's (finish() uses it).
  std::optional<sampling::KCenterResult> continued;
  double continued_seconds = 0;  // both selections' time

  at::Tensor gather(const std::vector<std::int64_t>& indices) const;
  // Greedy k-center over `points` (rows of `projected`) for `count` of the patches.
  // The coreset's size for `count` patches.
  std::int64_t centres_for(std::int64_t count) const {
    return std::max<std::int64_t>(
        1, static_cast<std::int64_t>(static_cast<double>(count) * options.coreset_ratio));
  }
  sampling::KCenterResult select_centres(const at::Tensor& points, std::int64_t count,
                                         const std::string& label) const;
  // The coreset of the rows not `held_out`, and, continued from it, the whole one (`continued`).
  std::vector<std::int64_t> select_continued(const std::vector<bool>& held_out, std::int64_t kept,
                                             const std::string& label);
  void require_complete() const;
};

void MemoryBankBuilder::Impl::require_complete() const {
  if (added != total) {
    throw Error("memory bank: expected " + std::to_string(total) + " training patches, got " +
                std::to_string(added));
  }
}

sampling::KCenterResult MemoryBankBuilder::Impl::select_centres(const at::Tensor& points,
                                                                std::int64_t count,
                                                                const std::string& label) const {
  const std::int64_t centers = centres_for(count);
  ProgressBar progress(label, static_cast<std::size_t>(centers), "centres");
  std::int64_t shown = 0;
  sampling::KCenterResult selection =
      sampling::k_center(points, {.centers = centers,
                                  .seed = options.seed,
                                  .method = options.method,
                                  .on_progress = [&](std::int64_t n) {
                                    progress.advance(static_cast<std::size_t>(n - shown));
                                    shown = n;
                                    check_interrupt();
                                  }});
  progress.finish();
  return selection;
}

std::vector<std::int64_t> MemoryBankBuilder::Impl::select_continued(
    const std::vector<bool>& held_out, std::int64_t kept, const std::string& label) {
  const std::int64_t first = centres_for(kept);
  const std::int64_t all = centres_for(total);
  std::optional<ProgressBar> progress(std::in_place, label, static_cast<std::size_t>(first),
                                      "centres");
  std::int64_t shown = 0;
  Stopwatch clock;
  const auto on_progress = [&](std::int64_t n) {
    if (n > first && shown <= first) {  // the first bank is done: the rest is the coreset's
      progress.reset();
      progress.emplace("coreset", static_cast<std::size_t>(all - first), "centres");
      shown = first;
    }
    progress->advance(static_cast<std::size_t>(n - shown));
    shown = n;
    check_interrupt();
  };
  sampling::ContinuedKCenterResult result = sampling::k_center_continued(
      projected, held_out, first,
      {.centers = all, .seed = options.seed, .method = options.method, .on_progress = on_progress});
  progress.reset();
  continued_seconds = clock.lap();
  std::vector<std::int64_t> first_bank(result.selection.indices.begin(),
                                       result.selection.indices.begin() + result.first_centers);
  continued = std::move(result.selection);
  return first_bank;
}

MemoryBankBuilder::MemoryBankBuilder(std::int64_t total_patches, std::int64_t dim,
                                     const BankOptions& options)
    : impl_(std::make_unique<Impl>()) {
  if (!(options.coreset_ratio > 0 && options.coreset_ratio <= 1)) {
    throw Error("--coreset-ratio must be in (0, 1], got " + std::to_string(options.coreset_ratio));
  }
  if (total_patches < 1 || dim < 1) throw Error("memory bank: no training patches");
  auto& s = *impl_;
  s.options = options;
  s.total = total_patches;
  s.dim = dim;
  s.select = options.coreset_ratio < 1.0;
  std::int64_t projected_bytes = 0;
  if (s.select) {
    const std::int64_t d = options.projection_dim > 0
                               ? options.projection_dim
                               : sampling::johnson_lindenstrauss_dim(total_patches);
    s.projection.emplace(dim, std::min(d, dim), options.seed);
    s.projected = at::empty({total_patches, s.projection->output_dim()}, at::kBFloat16);
    projected_bytes = s.projected.numel() * 2;
  }
  const std::int64_t patch_bytes = total_patches * dim * static_cast<std::int64_t>(sizeof(float));
  // Leave room for the backbone, the bank and the search that follow.
  const bool fits = options.max_memory_bytes <= 0 ||
                    patch_bytes + projected_bytes <= options.max_memory_bytes * 6 / 10;
  if (fits) {
    s.patches = at::empty({total_patches, dim}, at::kFloat);
  } else {
    s.spill = std::make_unique<SpillFile>(temp_folder(options.spill_dir));
    log::info("memory bank: " + std::to_string(patch_bytes >> 20) +
              " MiB of training patches exceed the memory budget; keeping them in a temporary "
              "file");
  }
}

MemoryBankBuilder::~MemoryBankBuilder() = default;

void MemoryBankBuilder::add(std::span<const float> values) {
  auto& s = *impl_;
  const auto rows = static_cast<std::int64_t>(values.size()) / s.dim;
  if (rows * s.dim != static_cast<std::int64_t>(values.size()) || s.added + rows > s.total) {
    throw Error("memory bank: got more training patches than announced");
  }
  const at::Tensor batch =
      at::from_blob(const_cast<float*>(values.data()), {rows, s.dim}, at::kFloat);
  if (s.projection) {
    Stopwatch clock;
    s.projected.narrow(0, s.added, rows).copy_(s.projection->apply(batch));
    s.project_seconds += clock.lap();
  }
  if (s.spill) {
    s.spill->append(std::as_bytes(values));
  } else {
    s.patches.narrow(0, s.added, rows).copy_(batch);
  }
  s.added += rows;
}

at::Tensor MemoryBankBuilder::Impl::gather(const std::vector<std::int64_t>& indices) const {
  if (!spill) return patches.index_select(0, at::tensor(indices, at::kLong));
  at::Tensor bank = at::empty({static_cast<std::int64_t>(indices.size()), dim}, at::kFloat);
  // Read in file order, write in selection order.
  std::vector<std::int64_t> order(indices.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return indices[a] < indices[b]; });
  const std::int64_t row_bytes = dim * static_cast<std::int64_t>(sizeof(float));
  auto* out = reinterpret_cast<std::byte*>(bank.data_ptr<float>());
  for (const auto i : order) {
    spill->read(indices[i] * row_bytes, {out + i * row_bytes, static_cast<std::size_t>(row_bytes)});
  }
  return bank;
}

at::Tensor MemoryBankBuilder::coreset_without(const std::vector<bool>& excluded, std::int64_t block,
                                              const std::string& label) {
  auto& s = *impl_;
  s.require_complete();
  std::vector<std::int64_t> kept_rows;
  for (std::int64_t row = 0; row < s.total; ++row) {
    const auto b = static_cast<std::size_t>(row / block);
    if (b >= excluded.size() || !excluded[b]) kept_rows.push_back(row);
  }
  if (kept_rows.empty()) throw Error("memory bank: cross-fitting left no patch");
  if (!s.select) return s.gather(kept_rows);
  if (s.options.method == CoresetMethod::kFast && !s.continued &&
      static_cast<std::int64_t>(kept_rows.size()) < s.total) {
    // The whole coreset goes on from this one: one selection's work instead of two.
    std::vector<bool> held_out(static_cast<std::size_t>(s.total), true);
    for (const auto row : kept_rows) held_out[static_cast<std::size_t>(row)] = false;
    return s.gather(
        s.select_continued(held_out, static_cast<std::int64_t>(kept_rows.size()), label));
  }
  const at::Tensor subset = s.projected.index_select(0, at::tensor(kept_rows, at::kLong));
  const auto selection =
      s.select_centres(subset, static_cast<std::int64_t>(kept_rows.size()), label);
  std::vector<std::int64_t> keep;
  keep.reserve(selection.indices.size());
  for (const auto i : selection.indices) keep.push_back(kept_rows[static_cast<std::size_t>(i)]);
  return s.gather(keep);
}

at::Tensor MemoryBankBuilder::rows(std::int64_t first, std::int64_t count) const {
  const auto& s = *impl_;
  s.require_complete();
  if (first < 0 || count < 0 || first + count > s.total)
    throw Error("memory bank: rows out of range");
  std::vector<std::int64_t> indices(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) indices[i] = first + i;
  return s.spill ? s.gather(indices) : s.patches.narrow(0, first, count);
}

at::Tensor MemoryBankBuilder::finish(BankReport* report) {
  auto& s = *impl_;
  s.require_complete();
  BankReport local{
      .patches = s.total, .spilled = s.spill != nullptr, .project_seconds = s.project_seconds};
  std::vector<std::int64_t> keep;
  if (s.select) {
    Stopwatch clock;
    const sampling::KCenterResult selection =
        s.continued ? *s.continued : s.select_centres(s.projected, s.total, "coreset");
    keep = selection.indices;
    local.projection_dim = s.projected.size(1);
    local.covering_radius = selection.covering_radius;
    local.coreset_seconds_before = s.continued ? s.continued_seconds : 0;
    local.coreset_seconds = clock.lap() + local.coreset_seconds_before;
    s.projected = at::Tensor();  // free it before the bank is gathered
  } else if (s.spill) {
    keep.resize(s.total);
    for (std::int64_t i = 0; i < s.total; ++i) keep[i] = i;
  }
  at::Tensor bank = s.select || s.spill ? s.gather(keep) : s.patches;
  s.patches = at::Tensor();
  local.size = bank.size(0);
  if (report != nullptr) *report = local;
  return bank;
}

}  // namespace pv::patchcore
