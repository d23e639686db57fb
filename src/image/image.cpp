#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include <patchvec/files.h>
#include <patchvec/image.h>

#include "image/codecs.h"

namespace pv {
namespace {

bool starts_with(std::span<const std::byte> bytes, std::string_view prefix, std::size_t at = 0) {
  return bytes.size() >= at + prefix.size() &&
         std::memcmp(bytes.data() + at, prefix.data(), prefix.size()) == 0;
}

// Formats people try that PatchVec does not read, named so that the message says what to do.
const char* other_format(std::span<const std::byte> bytes) {
  using namespace std::string_view_literals;
  if (starts_with(bytes, "II*\0"sv) || starts_with(bytes, "MM\0*"sv)) return "TIFF";
  if (starts_with(bytes, "RIFF"sv) && starts_with(bytes, "WEBP"sv, 8)) return "WebP";
  if (starts_with(bytes, "GIF8"sv)) return "GIF";
  if (starts_with(bytes, "ftypheic"sv, 4) || starts_with(bytes, "ftypmif1"sv, 4)) return "HEIC";
  return nullptr;
}

// The largest file an image within `limits` can honestly need: 8 bytes a pixel (16-bit RGBA,
// stored uncompressed) and room for metadata.
std::int64_t max_file_bytes(const ImageLimits& limits) {
  return limits.max_pixels * 8 + (16 << 20);
}

}  // namespace

ImageHeader read_image_header(std::span<const std::byte> bytes, std::string_view name) {
  const std::string where = "image " + std::string(name);
  if (bytes.empty()) throw ImageError(ImageError::Kind::kNotAnImage, where + ": file is empty");
  for (const auto reader : {codecs::png_header, codecs::jpeg_header, codecs::bmp_header}) {
    if (const auto header = reader(bytes, where)) return *header;
  }
  const char* other = other_format(bytes);
  throw ImageError(ImageError::Kind::kNotAnImage,
                   where + ": " +
                       (other ? std::string(other) + " is not supported" : "not an image") +
                       " (PatchVec reads " + kSupportedImageFormats + ")");
}

void check_limits(const ImageHeader& header, const ImageLimits& limits, std::string_view name) {
  if (std::int64_t{header.width} * header.height > limits.max_pixels) {
    throw ImageError(ImageError::Kind::kTooLarge,
                     "image " + std::string(name) + ": " + std::to_string(header.width) + "x" +
                         std::to_string(header.height) + " pixels is more than the limit of " +
                         std::to_string(limits.max_pixels) + " pixels (--max-pixels)");
  }
}

Image decode_image(std::span<const std::byte> bytes, std::string_view name,
                   const ImageLimits& limits) {
  const ImageHeader header = read_image_header(bytes, name);
  check_limits(header, limits, name);
  const std::string where = "image " + std::string(name);
  switch (header.format) {
    case ImageFormat::kPng:
      return codecs::decode_png(bytes, header, where);
    case ImageFormat::kJpeg:
      return codecs::decode_jpeg(bytes, header, where);
    case ImageFormat::kBmp:
      return codecs::decode_bmp(bytes, header, where);
  }
  throw ImageError(ImageError::Kind::kNotAnImage, where + ": unknown format");
}

namespace {}  // namespace

std::vector<std::byte> read_image_file(const std::filesystem::path& path,
                                       const ImageLimits& limits) {
  try {
    return read_file(path, max_file_bytes(limits));
  } catch (const Error& e) {
    throw ImageError(ImageError::Kind::kUnreadable, std::string("image: ") + e.what());
  }
}

Image load_image(const std::filesystem::path& path, const ImageLimits& limits) {
  return decode_image(read_image_file(path, limits), path.string(), limits);
}

ImageHeader read_image_header(const std::filesystem::path& path) {
  return read_image_header(read_image_file(path), path.string());
}

bool has_image_extension(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static constexpr std::array<std::string_view, 4> kKnown = {".png", ".jpg", ".jpeg", ".bmp"};
  return std::find(kKnown.begin(), kKnown.end(), extension) != kKnown.end();
}

Image image_from_samples(const std::uint8_t* data, int width, int height, int channels,
                         std::ptrdiff_t row_stride, std::ptrdiff_t pixel_stride,
                         std::ptrdiff_t channel_stride, std::string_view name,
                         const ImageLimits& limits) {
  const std::string where(name);
  if (width < 1 || height < 1) {
    throw ImageError(ImageError::Kind::kDamaged,
                     where + ": an image needs at least one pixel, not " + std::to_string(width) +
                         "x" + std::to_string(height));
  }
  if (channels != 1 && channels != 3 && channels != 4) {
    throw ImageError(ImageError::Kind::kDamaged,
                     where + ": " + std::to_string(channels) +
                         " channels; PatchVec takes 1 (grey), 3 (RGB) or 4 (RGBA)");
  }
  check_limits({.width = width, .height = height}, limits, where);
  Image image{.width = width, .height = height};
  image.pixels.resize(std::size_t(width) * height * 3);
  float* out = image.pixels.data();
  for (int y = 0; y < height; ++y) {
    const std::uint8_t* row = data + y * row_stride;
    for (int x = 0; x < width; ++x) {
      const std::uint8_t* pixel = row + x * pixel_stride;
      for (int c = 0; c < 3; ++c) {
        *out++ = codecs::unit_from_u8(pixel[channels == 1 ? 0 : c * channel_stride]);
      }
    }
  }
  return image;
}

}  // namespace pv
