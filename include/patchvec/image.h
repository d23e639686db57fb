// Images as the rest of PatchVec sees them: RGB, float channels in [0, 1].
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace pv {

// An RGB image stored row-major with interleaved channels (height x width x 3), values in [0, 1].
struct Image {
  int width = 0;
  int height = 0;
  std::vector<float> pixels;

  float at(int y, int x, int channel) const {
    return pixels[(std::size_t(y) * width + x) * 3 + channel];
  }
};

// Decodes PNG (8/16-bit; grey, grey+alpha, RGB, RGBA, palette) and JPEG, plus whatever else
// OpenCV reads (BMP, TIFF). Grey is replicated to RGB, alpha is dropped (as PIL's convert("RGB")),
// 16-bit samples are divided by 65535. EXIF orientation is ignored, as PIL does.
// Throws pv::Error naming the file if it is missing, unreadable, corrupt or truncated.
Image load_image(const std::filesystem::path& path);

// The same, from bytes in memory; `name` identifies them in error messages.
Image decode_image(std::span<const std::byte> bytes, std::string_view name);

// Width and height from a PNG's or JPEG's header, without decoding the pixels (to refuse huge
// images before allocating them); nullopt for other formats or a header that cannot be read.
struct ImageSize {
  int width = 0;
  int height = 0;
};
std::optional<ImageSize> peek_image_size(std::span<const std::byte> bytes);

// True for the file extensions load_image() is meant for (.png, .jpg, .jpeg, .bmp, .tif, .tiff;
// any case).
bool has_image_extension(const std::filesystem::path& path);

}  // namespace pv
