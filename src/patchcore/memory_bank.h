// Building PatchCore's memory bank from a stream of training patches: each batch is projected
// (random projection) on arrival, the full-dimensional patches are kept in memory or, beyond a
// memory budget, in an unlinked temporary file; greedy k-center then picks the coreset and only
// its patches are read back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <patchvec/coreset.h>

namespace pv::patchcore {

struct BankOptions {
  double coreset_ratio = 0.1;  // (0, 1]; 1 keeps every patch, no selection
  CoresetMethod method = CoresetMethod::kFast;
  std::int64_t projection_dim = 0;    // 0: anomalib's Johnson-Lindenstrauss dimension (eps 0.9)
  std::uint64_t seed = 0;             // projection matrix and first centre
  std::int64_t max_memory_bytes = 0;  // 0: no budget
  std::filesystem::path spill_dir;    // where patches go beyond the budget; empty: temp dir
};

struct BankReport {
  std::int64_t patches = 0;
  std::int64_t size = 0;            // patches kept
  std::int64_t projection_dim = 0;  // 0 when no selection ran
  double covering_radius = 0;       // in the projected space
  bool spilled = false;             // patches went to disk
  double project_seconds = 0;
  double coreset_seconds = 0;
  double coreset_seconds_before = 0;  // the part spent in coreset_without(): both selections
};

// Not thread-safe. add() batches in order, exactly `total_patches` rows in all, then finish().
class MemoryBankBuilder {
 public:
  MemoryBankBuilder(std::int64_t total_patches, std::int64_t dim, const BankOptions& options);
  ~MemoryBankBuilder();
  MemoryBankBuilder(const MemoryBankBuilder&) = delete;
  MemoryBankBuilder& operator=(const MemoryBankBuilder&) = delete;

  void add(std::span<const float> patches);  // rows x dim, row-major

  // Once every patch was added, before finish(), for cross-fitting: the coreset of the patches
  // whose `excluded` flag is false (one flag per consecutive block of `block` rows, an image),
  // chosen as finish() chooses (same ratio and seed), full-dimensional; and rows read back.
  // The fast method's first such call also makes finish()'s selection, continued from this one
  // (sampling::k_center_continued): both selections' time is the coreset's
  // (BankReport::coreset_seconds, coreset_seconds_before).
  at::Tensor coreset_without(const std::vector<bool>& excluded, std::int64_t block,
                             const std::string& progress_label);
  at::Tensor rows(std::int64_t first, std::int64_t count) const;

  at::Tensor finish(BankReport* report);  // size x dim float32

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pv::patchcore
