#include "station/frame_png.h"

#include <array>
#include <bit>
#include <cstring>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <patchvec/image.h>
#include <patchvec/text.h>

namespace pv::station {
namespace {

struct Known {
  PixelLayout layout;
  std::string_view name;
  std::size_t bytes;
};
constexpr std::array kKnown = {
    Known{PixelLayout::kMono8, "Mono8", 1},       Known{PixelLayout::kMono16, "Mono16", 2},
    Known{PixelLayout::kRgb8, "RGB8", 3},         Known{PixelLayout::kBgr8, "BGR8", 3},
    Known{PixelLayout::kBayerRG8, "BayerRG8", 1}, Known{PixelLayout::kBayerGR8, "BayerGR8", 1},
    Known{PixelLayout::kBayerGB8, "BayerGB8", 1}, Known{PixelLayout::kBayerBG8, "BayerBG8", 1},
};

// OpenCV names a Bayer conversion by the second row's second and third pixels (the 2x2 block at
// (1,1)), GenICam by the first row's first two: GenICam's RG is OpenCV's BG, and so on.
int demosaic_code(PixelLayout layout) {
  switch (layout) {
    case PixelLayout::kBayerRG8:
      return cv::COLOR_BayerBG2BGR;
    case PixelLayout::kBayerGR8:
      return cv::COLOR_BayerGB2BGR;
    case PixelLayout::kBayerGB8:
      return cv::COLOR_BayerGR2BGR;
    default:
      return cv::COLOR_BayerRG2BGR;
  }
}

// The frame as PNG bytes through OpenCV, which throws cv::Exception; empty if it cannot encode.
std::vector<unsigned char> encode(void* pixels, int width, int height, std::size_t stride,
                                  PixelLayout layout) {
  cv::Mat image;
  switch (layout) {
    case PixelLayout::kMono8:
      image = cv::Mat(height, width, CV_8UC1, pixels, stride);
      break;
    case PixelLayout::kMono16:
      // Little-endian samples; this machine's order is checked at compile time.
      static_assert(std::endian::native == std::endian::little);
      image = cv::Mat(height, width, CV_16UC1, pixels, stride);
      break;
    case PixelLayout::kRgb8:
      cv::cvtColor(cv::Mat(height, width, CV_8UC3, pixels, stride), image, cv::COLOR_RGB2BGR);
      break;
    case PixelLayout::kBgr8:
      image = cv::Mat(height, width, CV_8UC3, pixels, stride);
      break;
    default:
      cv::cvtColor(cv::Mat(height, width, CV_8UC1, pixels, stride), image, demosaic_code(layout));
      break;
  }
  std::vector<unsigned char> png;
  if (!cv::imencode(".png", image, png, {cv::IMWRITE_PNG_COMPRESSION, 1})) png.clear();
  return png;
}

}  // namespace

std::optional<PixelLayout> parse_pixel_layout(std::string_view genicam_name) {
  for (const Known& known : kKnown) {
    if (known.name == genicam_name) return known.layout;
  }
  return std::nullopt;
}

std::string_view pixel_layout_name(PixelLayout layout) {
  for (const Known& known : kKnown) {
    if (known.layout == layout) return known.name;
  }
  return "?";
}

std::size_t bytes_per_pixel(PixelLayout layout) {
  for (const Known& known : kKnown) {
    if (known.layout == layout) return known.bytes;
  }
  return 1;
}

std::vector<std::byte> frame_png(std::span<const std::byte> data, int width, int height,
                                 std::size_t stride, PixelLayout layout) {
  const std::string what = std::string(pixel_layout_name(layout)) + " frame of " +
                           std::to_string(width) + "x" + std::to_string(height);
  if (width <= 0 || height <= 0 || width > 65535 || height > 65535) {
    throw ImageError(ImageError::Kind::kDamaged, "a " + what + ": no such size");
  }
  const std::size_t row = static_cast<std::size_t>(width) * bytes_per_pixel(layout);
  if (stride < row || data.size() < stride * static_cast<std::size_t>(height - 1) + row) {
    throw ImageError(ImageError::Kind::kDamaged,
                     "a " + what + " of " + std::to_string(data.size()) + " bytes: too short");
  }
  // OpenCV only reads `data` here (the Mat header is not const-correct).
  void* pixels = const_cast<std::byte*>(data.data());
  // OpenCV wants a 16-bit frame's rows a whole number of samples apart: an odd padding is packed
  // away first.
  std::vector<std::byte> packed;
  if (layout == PixelLayout::kMono16 && stride % 2 != 0) {
    packed.resize(row * static_cast<std::size_t>(height));
    for (std::size_t y = 0; y < static_cast<std::size_t>(height); ++y) {
      std::memcpy(packed.data() + row * y, data.data() + stride * y, row);
    }
    pixels = packed.data();
    stride = row;
  }
  std::vector<unsigned char> png;
  try {
    png = encode(pixels, width, height, stride, layout);
  } catch (const cv::Exception& e) {
    throw ImageError(ImageError::Kind::kDamaged, "a " + what + ": " + printable(e.what(), 300));
  }
  if (png.empty()) {
    throw ImageError(ImageError::Kind::kDamaged, "a " + what + ": cannot encode it as PNG");
  }
  std::vector<std::byte> out(png.size());
  std::memcpy(out.data(), png.data(), png.size());
  return out;
}

}  // namespace pv::station
