// A camera's or stream's raw frame as PNG bytes: what the lane hands to the one inspection use
// case (which takes encoded images), the evidence archive keeps, and reports store. Lossless, so
// that the model sees exactly the camera's pixels.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace pv::station {

// The pixel formats a station takes, by their GenICam names (PFNC). Bayer patterns are named by
// the colours of the first two pixels of the first row, as GenICam does.
enum class PixelLayout {
  kMono8,
  kMono16,
  kRgb8,
  kBgr8,
  kBayerRG8,
  kBayerGR8,
  kBayerGB8,
  kBayerBG8
};

std::optional<PixelLayout> parse_pixel_layout(std::string_view genicam_name);
std::string_view pixel_layout_name(PixelLayout layout);
std::size_t bytes_per_pixel(PixelLayout layout);

// `height` rows of `stride` bytes each in `layout` (Mono16 little-endian, as GenICam sends it) as
// a PNG: grey stays grey (8 or 16 bits; the decoder replicates it to RGB), Bayer is demosaiced
// (OpenCV, bilinear) to RGB, RGB and BGR are stored as RGB. Throws ImageError when `data` is
// shorter than the frame it should hold or the size is not positive.
std::vector<std::byte> frame_png(std::span<const std::byte> data, int width, int height,
                                 std::size_t stride, PixelLayout layout);

}  // namespace pv::station
