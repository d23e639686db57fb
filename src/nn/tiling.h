// Tiling's geometry on tensors (the public side is <patchvec/tiling.h>): scaling an image,
// cutting it into its layout's tiles, and stitching the tiles' maps back with overlap blending.
#pragma once

#include <cstddef>
#include <vector>

#include <ATen/core/Tensor.h>

#include <patchvec/tiling.h>

namespace pv::nn {

// `chw` (C x H x W, the whole image) resized to the layout's scaled size (bilinear, antialiased,
// as torchvision's Resize); returned as is when it already has that size.
at::Tensor scaled(const at::Tensor& chw, const TileLayout& layout);

// The layout's tiles of a scaled C x H x W image: T x C x size x size, contiguous, row-major.
at::Tensor cut_tiles(const at::Tensor& chw, const TileLayout& layout);

// Blend weights of tile `tile` along one side (`origins` of that side), one per pixel of the
// tile: a ramp over the pixels shared with each neighbour, normalised so that at every pixel the
// weights of the tiles covering it add up to 1; exactly 1 where one tile alone covers a pixel.
std::vector<float> blend_weights(const std::vector<int>& origins, int size, std::size_t tile);

// The tiles' maps (T x size x size, the layout's order) blended into one height x width map
// (float32). Each pixel is the blend-weighted mean of the tiles covering it, so maps that agree
// where they overlap stitch into exactly that map. Throws pv::Error when the shapes disagree.
at::Tensor stitch(const at::Tensor& tile_maps, const TileLayout& layout);

}  // namespace pv::nn
