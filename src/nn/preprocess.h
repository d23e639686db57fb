// Image -> network input, exactly as anomalib 2.x's tensor transforms do it:
// Resize(image_size, bilinear, antialias) on the float image, CenterCrop(crop_size), then
// ImageNet normalisation.
#pragma once

#include <ATen/core/Tensor.h>

#include <patchvec/image.h>

namespace pv::nn {

struct PreprocessOptions {
  int image_size = 256;  // the image is resized to image_size x image_size
  int crop_size = 224;   // then centre-cropped to crop_size x crop_size; 0 = no crop
  int output_size() const { return crop_size > 0 ? crop_size : image_size; }
};

// Throws pv::Error for sizes that cannot work (non-positive, crop larger than the image).
void validate(const PreprocessOptions& options);

// 3 x S x S float tensor, contiguous.
at::Tensor preprocess(const Image& image, const PreprocessOptions& options);

}  // namespace pv::nn
