// The decoders behind decode_image(), one file per format. Each reads hostile bytes: it checks
// what it decodes against the header decode_image() already checked against the limits, turns
// every library error into an ImageError, and writes nothing to stderr.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include <patchvec/image.h>

namespace pv::codecs {

// Byte and 16-bit samples to [0, 1]: the one conversion every decoder (and the synthetic data
// generator, which must agree with a PNG round trip bit for bit) uses.
inline float unit_from_u8(std::uint8_t value) {
  return static_cast<float>(value / 255.0);
}
inline float unit_from_u16(std::uint16_t value) {
  return static_cast<float>(value / 65535.0);
}

// Width and height from the header, nullopt if the bytes are not this format at all; throws
// ImageError(kDamaged) for the format's signature with a header that cannot be read.
std::optional<ImageHeader> png_header(std::span<const std::byte> bytes, const std::string& where);
std::optional<ImageHeader> jpeg_header(std::span<const std::byte> bytes, const std::string& where);
std::optional<ImageHeader> bmp_header(std::span<const std::byte> bytes, const std::string& where);

// Decode bytes whose header is `header` (already within the limits). `where` starts messages.
Image decode_png(std::span<const std::byte> bytes, const ImageHeader& header,
                 const std::string& where);
Image decode_jpeg(std::span<const std::byte> bytes, const ImageHeader& header,
                  const std::string& where);
Image decode_bmp(std::span<const std::byte> bytes, const ImageHeader& header,
                 const std::string& where);

[[noreturn]] inline void damaged(const std::string& where, const std::string& what) {
  throw ImageError(ImageError::Kind::kDamaged, where + ": " + what);
}

}  // namespace pv::codecs
