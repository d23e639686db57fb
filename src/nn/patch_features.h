// PatchCore's locally aware patch features: each layer's feature map is 3x3 average-pooled
// (stride 1, zero padding counted, i.e. divided by 9), deeper maps are bilinearly resized to the
// first map's grid (align_corners = false), and all are concatenated along channels.
#pragma once

#include <ATen/core/Tensor.h>

namespace pv::nn {

// layer2: N x C2 x H x W, layer3: N x C3 x h x w  ->  N x (C2 + C3) x H x W.
at::Tensor patch_embeddings(const at::Tensor& layer2, const at::Tensor& layer3);

}  // namespace pv::nn
