#include "nn/preprocess.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

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

at::Tensor resize_bounded(const at::Tensor& nchw, std::int64_t height, std::int64_t width) {
  // Antialiased weights take about 8 bytes per input pixel along each axis: for a side of
  // millions of pixels (an image of 1 x 40,000,000) hundreds of megabytes. A side over 256 times
  // its output is first averaged in boxes down to at most 64 times it (a pre-reduction, as PIL's
  // reducing_gap): no image whose sides stay below 65,536 pixels goes this way.
  at::Tensor input = nchw;
  for (const int dim : {2, 3}) {
    const std::int64_t out = dim == 2 ? height : width;
    if (input.size(dim) <= 256 * out) continue;
    const std::int64_t k = input.size(dim) / (64 * out);
    const std::vector<std::int64_t> box =
        dim == 2 ? std::vector<std::int64_t>{k, 1} : std::vector<std::int64_t>{1, k};
    input = at::avg_pool2d(input, box, box, {0, 0}, /*ceil_mode=*/true,
                           /*count_include_pad=*/false);
  }
  // Antialiased resizing is separable, and libtorch resizes the width first: an intermediate of
  // C x H x width. For an image far taller than wide that is much more than the image itself
  // (3 GB for the 12 MB of 1 x 1,000,000 pixels). Then the height goes first, in a pass of its
  // own: an intermediate of C x height x W. The same sums in another order; images whose
  // width-first intermediate stays within the bound (every photo-like aspect) take libtorch's own
  // path, torchvision-exact.
  const std::int64_t h = input.size(2), w = input.size(3);
  const std::int64_t width_first = h * width, height_first = height * w;
  const std::int64_t bound = std::max(h * w, std::int64_t{4} * height * width);
  if (width_first <= bound || height_first >= width_first) {
    return at::_upsample_bilinear2d_aa(input, {height, width}, /*align_corners=*/false);
  }
  const at::Tensor tall = at::_upsample_bilinear2d_aa(input, {height, w}, /*align_corners=*/false);
  return at::_upsample_bilinear2d_aa(tall, {height, width}, /*align_corners=*/false);
}

at::Tensor preprocess(const Image& image, const PreprocessOptions& options) {
  const at::Tensor chw = channels_first(image).unsqueeze(0);
  at::Tensor resized = resize_bounded(chw, options.image_size, options.image_size);
  if (options.crop_size > 0) {
    // torchvision: offset = int(round((size - crop) / 2.0)); Python rounds half to even.
    const auto offset =
        static_cast<std::int64_t>(std::nearbyint((options.image_size - options.crop_size) / 2.0));
    resized = resized.narrow(2, offset, options.crop_size).narrow(3, offset, options.crop_size);
  }
  return normalized(resized).squeeze(0).contiguous();
}

}  // namespace pv::nn
