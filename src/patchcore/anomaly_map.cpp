#include "patchcore/anomaly_map.h"

#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>

#include "nn/tiling.h"

namespace pv::patchcore {

int gaussian_kernel_size(double sigma) {
  return 2 * static_cast<int>(4.0 * sigma + 0.5) + 1;
}

namespace {

void check_sigma(double sigma, int size) {
  if (!(sigma > 0) || sigma > max_sigma(size)) {
    throw Error("anomaly map blur sigma " + std::to_string(sigma) + " is outside (0, " +
                std::to_string(max_sigma(size)) + "] for " + std::to_string(size) + "-pixel maps");
  }
}

// B x 1 x h x w patch scores to B x 1 x height x width.
at::Tensor upsampled(const at::Tensor& scores, std::int64_t height, std::int64_t width,
                     MapUpsampling upsampling) {
  return upsampling == MapUpsampling::kBilinear
             ? at::upsample_bilinear2d(scores, {height, width}, /*align_corners=*/false)
             : at::upsample_nearest2d(scores, {height, width});
}

// Separable Gaussian with reflect padding of B x 1 x H x W maps; returns B x H x W.
at::Tensor blurred(const at::Tensor& maps, double sigma) {
  const int kernel = gaussian_kernel_size(sigma);
  const int pad = kernel / 2;
  if (std::min(maps.size(2), maps.size(3)) <= pad) {
    throw Error("anomaly map of " + std::to_string(std::min(maps.size(2), maps.size(3))) +
                " pixels is too small for a " + std::to_string(kernel) + "-pixel blur");
  }
  // The 2-D kernel is the outer product of this normalised 1-D one.
  const at::Tensor x = at::arange(kernel, at::kDouble) - (kernel - 1) / 2.0;
  at::Tensor weights = at::exp(-x.pow(2) / (2 * sigma * sigma));
  weights = (weights / weights.sum()).to(at::kFloat);
  const at::Tensor padded = at::reflection_pad2d(maps, {pad, pad, pad, pad});
  const at::Tensor rows = at::conv2d(padded, weights.view({1, 1, 1, kernel}));
  return at::conv2d(rows, weights.view({1, 1, kernel, 1})).squeeze(1);
}

}  // namespace

at::Tensor anomaly_maps(const at::Tensor& patch_scores, const AnomalyMapOptions& options) {
  check_sigma(options.sigma, options.size);
  const at::Tensor scores = patch_scores.to(at::kFloat).unsqueeze(1);  // B x 1 x h x w
  return blurred(upsampled(scores, options.size, options.size, options.upsampling), options.sigma);
}

at::Tensor tiled_anomaly_map(const at::Tensor& patch_scores, const TileLayout& layout,
                             const AnomalyMapOptions& options) {
  check_sigma(options.sigma, std::min(layout.width, layout.height));
  const at::Tensor scores = patch_scores.to(at::kFloat).unsqueeze(1);  // T x 1 x h x w
  const at::Tensor tiles =
      upsampled(scores, layout.size, layout.size, options.upsampling).squeeze(1);
  return blurred(nn::stitch(tiles, layout).unsqueeze(0).unsqueeze(0), options.sigma).squeeze(0);
}

}  // namespace pv::patchcore
