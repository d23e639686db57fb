// Sparse random projection (Achlioptas; Li, Hastie & Church 2006), as anomalib's PatchCore uses it
// to make coreset selection cheaper: distances survive the projection up to a factor (1 +- eps)
// (Johnson-Lindenstrauss).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace pv::sampling {

// The Johnson-Lindenstrauss dimension for `samples` points at distortion `eps`, as
// sklearn/anomalib compute it: 4 ln(n) / (eps^2/2 - eps^3/3), truncated. anomalib uses eps = 0.9.
std::int64_t johnson_lindenstrauss_dim(std::int64_t samples, double eps = 0.9);

// Immutable after construction; apply() may run concurrently.
class RandomProjection {
 public:
  // Entries are +-sqrt(s / output_dim) with probability 1/(2s) each and 0 otherwise,
  // s = sqrt(input_dim) (sklearn's "auto" density). Deterministic for a seed.
  RandomProjection(std::int64_t input_dim, std::int64_t output_dim, std::uint64_t seed);

  // N x input_dim -> N x output_dim, float32.
  at::Tensor apply(const at::Tensor& points) const;

  std::int64_t output_dim() const;

 private:
  at::Tensor matrix_;  // input_dim x output_dim
};

}  // namespace pv::sampling
