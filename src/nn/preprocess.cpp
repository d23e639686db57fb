#include "nn/preprocess.h"

#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>

namespace pv::nn {
namespace {

constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};

}  // namespace

void validate(const PreprocessOptions& options) {
  if (options.image_size <= 0) {
    throw Error("--image-size must be positive, got " + std::to_string(options.image_size));
  }
  if (options.crop_size < 0 || options.crop_size > options.image_size) {
    throw Error("--crop-size must be between 0 (no crop) and --image-size (" +
                std::to_string(options.image_size) + "), got " + std::to_string(options.crop_size));
  }
}

at::Tensor preprocess(const Image& image, const PreprocessOptions& options) {
  const auto hwc = at::from_blob(const_cast<float*>(image.pixels.data()),
                                 {image.height, image.width, 3}, at::kFloat);
  const at::Tensor chw = hwc.permute({2, 0, 1}).contiguous().unsqueeze(0);
  at::Tensor resized = at::_upsample_bilinear2d_aa(chw, {options.image_size, options.image_size},
                                                   /*align_corners=*/false);
  if (options.crop_size > 0) {
    // torchvision: offset = int(round((size - crop) / 2.0)); Python rounds half to even.
    const auto offset =
        static_cast<std::int64_t>(std::nearbyint((options.image_size - options.crop_size) / 2.0));
    resized = resized.narrow(2, offset, options.crop_size).narrow(3, offset, options.crop_size);
  }
  const auto mean = at::from_blob(const_cast<float*>(kImageNetMean), {1, 3, 1, 1}, at::kFloat);
  const auto stddev = at::from_blob(const_cast<float*>(kImageNetStd), {1, 3, 1, 1}, at::kFloat);
  return ((resized - mean) / stddev).squeeze(0).contiguous();
}

}  // namespace pv::nn
