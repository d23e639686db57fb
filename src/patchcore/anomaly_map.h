// From patch distances to a pixel anomaly map: upsample the patch grid to the image (crop) size,
// then blur with a Gaussian (sigma 4, kernel 2*int(4 sigma + 0.5) + 1 = 33, reflect padding), as
// anomalib's AnomalyMapGenerator does.
#pragma once

#include <ATen/core/Tensor.h>

#include <patchvec/model.h>

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

}  // namespace pv::patchcore
