// From patch distances to a pixel anomaly map: upsample the patch grid to the image (crop) size,
// then blur with a Gaussian (sigma 4, kernel 2*int(4 sigma + 0.5) + 1 = 33, reflect padding), as
// anomalib's AnomalyMapGenerator does.
#pragma once

#include <ATen/core/Tensor.h>

#include <patchvec/model.h>
#include <patchvec/tiling.h>

namespace pv::patchcore {

struct AnomalyMapOptions {
  int size = 224;
  double sigma = 4.0;
  MapUpsampling upsampling = MapUpsampling::kBilinear;
};

int gaussian_kernel_size(double sigma);

// The largest sigma whose blur fits a map of `size` pixels (reflect padding needs pad < size).
inline double max_sigma(int size) {
  return (size - 1) / 4.0;
}

// `patch_scores`: B x h x w. Returns B x size x size float32.
at::Tensor anomaly_maps(const at::Tensor& patch_scores, const AnomalyMapOptions& options);

// One tiled image's map: `patch_scores` (T x h x w, the layout's tiles in order) each upsampled
// to the tile size (options.size is ignored), stitched with overlap blending (nn::stitch), then
// the whole map blurred once, so tile borders leave no seam. Returns layout.height x
// layout.width float32. With a single tile covering the image it equals anomaly_maps() of that
// tile.
at::Tensor tiled_anomaly_map(const at::Tensor& patch_scores, const TileLayout& layout,
                             const AnomalyMapOptions& options);

}  // namespace pv::patchcore
