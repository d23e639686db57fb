#include "nn/patch_features.h"

#include <ATen/ATen.h>

namespace pv::nn {

at::Tensor patch_embeddings(const at::Tensor& layer2, const at::Tensor& layer3) {
  const auto pool = [](const at::Tensor& x) {
    return at::avg_pool2d(x, /*kernel_size=*/3, /*stride=*/1, /*padding=*/1,
                          /*ceil_mode=*/false, /*count_include_pad=*/true);
  };
  const at::Tensor near = pool(layer2);
  const at::Tensor far = at::upsample_bilinear2d(pool(layer3), {near.size(2), near.size(3)},
                                                 /*align_corners=*/false);
  return at::cat({near, far}, 1);
}

}  // namespace pv::nn
