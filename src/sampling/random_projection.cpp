#include "sampling/random_projection.h"

#include <cmath>
#include <random>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>

namespace pv::sampling {

std::int64_t johnson_lindenstrauss_dim(std::int64_t samples, double eps) {
  if (samples < 2) return 1;
  const double denominator = eps * eps / 2 - eps * eps * eps / 3;
  return static_cast<std::int64_t>(4 * std::log(static_cast<double>(samples)) / denominator);
}

RandomProjection::RandomProjection(std::int64_t input_dim, std::int64_t output_dim,
                                   std::uint64_t seed) {
  if (input_dim < 1 || output_dim < 1) {
    throw Error("random projection needs positive dimensions, got " + std::to_string(input_dim) +
                " -> " + std::to_string(output_dim));
  }
  const double s = std::sqrt(static_cast<double>(input_dim));
  const auto value = static_cast<float>(std::sqrt(s / static_cast<double>(output_dim)));
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  matrix_ = at::zeros({input_dim, output_dim}, at::kFloat);
  float* m = matrix_.data_ptr<float>();
  for (std::int64_t i = 0; i < input_dim * output_dim; ++i) {
    const double draw = uniform(random);
    if (draw < 0.5 / s) {
      m[i] = -value;
    } else if (draw < 1.0 / s) {
      m[i] = value;
    }
  }
}

at::Tensor RandomProjection::apply(const at::Tensor& points) const {
  return at::mm(points.to(at::kFloat), matrix_);
}

std::int64_t RandomProjection::output_dim() const {
  return matrix_.size(1);
}

}  // namespace pv::sampling
