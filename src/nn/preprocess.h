// Image -> network input, exactly as anomalib 2.x's tensor transforms do it:
// Resize(image_size, bilinear, antialias) on the float image, CenterCrop(crop_size), then
// ImageNet normalisation.
#pragma once

#include <ATen/core/Tensor.h>

#include <patchvec/image.h>
#include <patchvec/tiling.h>

namespace pv::nn {

struct PreprocessOptions {
  int image_size = 256;  // the image is resized to image_size x image_size
  int crop_size = 224;   // then centre-cropped to crop_size x crop_size; 0 = no crop
  // When enabled, replaces the two above: the image is scaled and cut into tiles, each an input.
  TilingOptions tiling;
  int output_size() const {
    return tiling.enabled() ? tiling.size : crop_size > 0 ? crop_size : image_size;
  }
};

// Throws pv::Error for sizes that cannot work (non-positive, crop larger than the image).
void validate(const PreprocessOptions& options);

// `nchw` resized to height x width (antialiased bilinear, exactly as torchvision for sides below
// 65,536 pixels), with intermediates no larger than the input plus a few outputs whatever the
// aspect: an image of 1 x 1,000,000 pixels does not become a 1,000,000 x 256 plane on its way,
// and a side of millions of pixels is box-averaged first instead of weighing every pixel.
at::Tensor resize_bounded(const at::Tensor& nchw, std::int64_t height, std::int64_t width);

// 3 x S x S float tensor, contiguous. Without tiling only.
at::Tensor preprocess(const Image& image, const PreprocessOptions& options);

// The network inputs of one image: 1 x 3 x S x S without tiling; with it, the image scaled,
// normalised and cut into its tiles, T x 3 x S x S, and `*layout` set to where they lie. Throws
// ImageError (kDamaged) for an image smaller than a tile, or whose pixels do not match its size.
at::Tensor preprocess_inputs(const Image& image, const PreprocessOptions& options,
                             TileLayout* layout);

}  // namespace pv::nn
