#include "patchcore/anomaly_map.h"

#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>

namespace pv::patchcore {

int gaussian_kernel_size(double sigma) {
  return 2 * static_cast<int>(4.0 * sigma + 0.5) + 1;
}

at::Tensor anomaly_maps(const at::Tensor& patch_scores, const AnomalyMapOptions& options) {
  if (!(options.sigma > 0) || options.sigma > max_sigma(options.size)) {
    throw Error("anomaly map blur sigma " + std::to_string(options.sigma) + " is outside (0, " +
                std::to_string(max_sigma(options.size)) + "] for " + std::to_string(options.size) +
                "-pixel maps");
  }
  const int kernel = gaussian_kernel_size(options.sigma);
  const int pad = kernel / 2;
  if (options.size <= pad) {
    throw Error("anomaly map of " + std::to_string(options.size) + " pixels is too small for a " +
                std::to_string(kernel) + "-pixel blur");
  }
  const at::Tensor scores = patch_scores.to(at::kFloat).unsqueeze(1);  // B x 1 x h x w
  const at::Tensor upsampled =
      options.upsampling == MapUpsampling::kBilinear
          ? at::upsample_bilinear2d(scores, {options.size, options.size}, /*align_corners=*/false)
          : at::upsample_nearest2d(scores, {options.size, options.size});
  // Separable Gaussian: the 2-D kernel is the outer product of this normalised 1-D one.
  const at::Tensor x = at::arange(kernel, at::kDouble) - (kernel - 1) / 2.0;
  at::Tensor weights = at::exp(-x.pow(2) / (2 * options.sigma * options.sigma));
  weights = (weights / weights.sum()).to(at::kFloat);
  const at::Tensor padded = at::reflection_pad2d(upsampled, {pad, pad, pad, pad});
  const at::Tensor rows = at::conv2d(padded, weights.view({1, 1, 1, kernel}));
  return at::conv2d(rows, weights.view({1, 1, kernel, 1})).squeeze(1);
}

}  // namespace pv::patchcore
