#include "nn/preprocess.h"

#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>

#include "nn/tiling.h"

namespace pv::nn {
namespace {

constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};

}  // namespace

void validate(const PreprocessOptions& options) {
  if (options.tiling.enabled()) {
    pv::validate(options.tiling);
    return;
  }
  if (options.image_size <= 0) {
    throw Error("--image-size must be positive, got " + std::to_string(options.image_size));
  }
  if (options.crop_size < 0 || options.crop_size > options.image_size) {
    throw Error("--crop-size must be between 0 (no crop) and --image-size (" +
                std::to_string(options.image_size) + "), got " + std::to_string(options.crop_size));
  }
}

namespace {

at::Tensor normalized(const at::Tensor& nchw) {
  const auto mean = at::from_blob(const_cast<float*>(kImageNetMean), {1, 3, 1, 1}, at::kFloat);
  const auto stddev = at::from_blob(const_cast<float*>(kImageNetStd), {1, 3, 1, 1}, at::kFloat);
  return (nchw - mean) / stddev;
}

at::Tensor channels_first(const Image& image) {
  const auto hwc = at::from_blob(const_cast<float*>(image.pixels.data()),
                                 {image.height, image.width, 3}, at::kFloat);
  return hwc.permute({2, 0, 1}).contiguous();
}

}  // namespace

at::Tensor preprocess_inputs(const Image& image, const PreprocessOptions& options,
                             TileLayout* layout) {
  // Images made by callers of the library, not only by the decoders: their fields are checked.
  if (image.width < 1 || image.height < 1 ||
      image.pixels.size() != static_cast<std::size_t>(image.width) * image.height * 3) {
    throw ImageError(ImageError::Kind::kDamaged,
                     "an image of " + std::to_string(image.width) + "x" +
                         std::to_string(image.height) + " pixels holds " +
                         std::to_string(image.pixels.size()) + " values, not 3 per pixel");
  }
  if (!options.tiling.enabled()) return preprocess(image, options).unsqueeze(0);
  try {
    *layout = tile_layout(image.width, image.height, options.tiling);
  } catch (const ImageError&) {
    throw;
  } catch (const Error& e) {
    throw ImageError(ImageError::Kind::kDamaged, e.what());
  }
  const at::Tensor scaled_image = scaled(channels_first(image), *layout);
  return normalized(cut_tiles(scaled_image, *layout)).contiguous();
}

at::Tensor preprocess(const Image& image, const PreprocessOptions& options) {
  const at::Tensor chw = channels_first(image).unsqueeze(0);
  at::Tensor resized = at::_upsample_bilinear2d_aa(chw, {options.image_size, options.image_size},
                                                   /*align_corners=*/false);
  if (options.crop_size > 0) {
    // torchvision: offset = int(round((size - crop) / 2.0)); Python rounds half to even.
    const auto offset =
        static_cast<std::int64_t>(std::nearbyint((options.image_size - options.crop_size) / 2.0));
    resized = resized.narrow(2, offset, options.crop_size).narrow(3, offset, options.crop_size);
  }
  return normalized(resized).squeeze(0).contiguous();
}

}  // namespace pv::nn
