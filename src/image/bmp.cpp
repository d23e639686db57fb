// BMP, read here: OpenCV's reader writes to std::cerr on a malformed header and cannot be told
// not to, and the format is small. Supported, as PIL reads them: the Windows (BITMAPINFOHEADER,
// V4, V5) and OS/2 1.x headers; 1, 4 and 8 bits with a palette, uncompressed or RLE; 16 and 32
// bits with or without bit-field masks; 24 bits. Every offset and size is checked before use.
#include <algorithm>
#include <cstring>
#include <vector>

#include "image/codecs.h"

namespace pv::codecs {
namespace {

constexpr std::uint32_t kRgb = 0, kRle8 = 1, kRle4 = 2, kBitFields = 3, kAlphaBitFields = 6;

std::uint32_t le32(std::span<const std::byte> bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (std::size_t i = 4; i-- > 0;) value = (value << 8) | static_cast<std::uint8_t>(bytes[at + i]);
  return value;
}

std::uint16_t le16(std::span<const std::byte> bytes, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<std::uint8_t>(bytes[at]) |
                                    (static_cast<std::uint8_t>(bytes[at + 1]) << 8));
}

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
};

// One colour channel under a bit-field mask, scaled to 8 bits.
struct Channel {
  std::uint32_t mask = 0;
  int shift = 0;
  std::uint32_t max = 0;

  explicit Channel(std::uint32_t m) : mask(m) {
    if (mask == 0) return;
    while (!((mask >> shift) & 1u)) ++shift;
    max = mask >> shift;
  }
  std::uint8_t operator()(std::uint32_t pixel) const {
    if (max == 0) return 0;
    const std::uint64_t value = (pixel & mask) >> shift;
    return static_cast<std::uint8_t>((value * 255 + max / 2) / max);
  }
};

struct Layout {
  std::int64_t width = 0, height = 0;
  bool top_down = false;
  int bits = 0;
  std::uint32_t compression = kRgb;
  std::uint32_t pixels_at = 0;
  std::uint32_t masks[3] = {0, 0, 0};
  std::vector<Rgb> palette;
};

Layout layout_of(std::span<const std::byte> bytes, const ImageHeader& header,
                 const std::string& where) {
  Layout l;
  l.width = header.width;
  l.height = header.height;
  l.pixels_at = le32(bytes, 10);
  const std::uint32_t info_size = le32(bytes, 14);
  std::size_t palette_at = 14 + static_cast<std::size_t>(info_size);
  std::size_t entry = 4;
  std::uint32_t colours = 0;
  if (info_size == 12) {
    l.bits = le16(bytes, 24);
    entry = 3;
  } else {
    if (bytes.size() < 14 + 40) damaged(where, "BMP data is truncated (header)");
    l.top_down = static_cast<std::int32_t>(le32(bytes, 22)) < 0;
    l.bits = le16(bytes, 28);
    l.compression = le32(bytes, 30);
    colours = le32(bytes, 46);
    if (l.compression == kBitFields || l.compression == kAlphaBitFields) {
      const std::size_t masks_at = 14 + 40;  // after a 40-byte header, inside a longer one
      if (bytes.size() < masks_at + 12) damaged(where, "BMP data is truncated (bit fields)");
      for (int i = 0; i < 3; ++i)
        l.masks[i] = le32(bytes, masks_at + 4 * static_cast<std::size_t>(i));
      if (info_size == 40) palette_at += l.compression == kAlphaBitFields ? 16 : 12;
    }
  }
  const bool paletted = l.bits == 1 || l.bits == 4 || l.bits == 8;
  const bool valid_bits = paletted || l.bits == 16 || l.bits == 24 || l.bits == 32;
  const bool valid_compression =
      l.compression == kRgb || (l.compression == kRle8 && l.bits == 8) ||
      (l.compression == kRle4 && l.bits == 4) ||
      ((l.compression == kBitFields || l.compression == kAlphaBitFields) &&
       (l.bits == 16 || l.bits == 32));
  if (!valid_bits || !valid_compression) {
    damaged(where, "BMP with " + std::to_string(l.bits) + " bits a pixel and compression " +
                       std::to_string(l.compression) + " is not supported");
  }
  if ((l.compression == kRle8 || l.compression == kRle4) && l.top_down) {
    damaged(where, "corrupt BMP (a top-down RLE image)");
  }
  if (l.compression == kRgb && l.bits == 16)
    l.masks[0] = 0x7c00, l.masks[1] = 0x3e0, l.masks[2] = 0x1f;
  if (l.compression == kRgb && l.bits == 32) {
    l.masks[0] = 0xff0000, l.masks[1] = 0xff00, l.masks[2] = 0xff;
  }
  if (paletted) {
    const std::uint32_t most = 1u << l.bits;
    const std::uint32_t count = colours == 0 || colours > most ? most : colours;
    if (palette_at > bytes.size() || (bytes.size() - palette_at) / entry < count) {
      damaged(where, "BMP data is truncated (palette)");
    }
    l.palette.resize(most);  // indices beyond the stored colours read black, as in PIL
    for (std::uint32_t i = 0; i < count; ++i) {
      const std::size_t at = palette_at + i * entry;
      l.palette[i] = {static_cast<std::uint8_t>(bytes[at + 2]),
                      static_cast<std::uint8_t>(bytes[at + 1]),
                      static_cast<std::uint8_t>(bytes[at])};
    }
  }
  if (l.pixels_at >= bytes.size()) damaged(where, "BMP data is truncated (no pixels)");
  return l;
}

// Palette indices of an RLE image, bottom-up rows as stored. Runs outside the image are errors.
std::vector<std::uint8_t> rle_indices(std::span<const std::byte> data, const Layout& l,
                                      const std::string& where) {
  std::vector<std::uint8_t> indices(static_cast<std::size_t>(l.width * l.height), 0);
  const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(data[i]); };
  std::int64_t x = 0, y = 0;
  const auto put = [&](std::uint8_t index) {
    if (x >= l.width || y >= l.height) damaged(where, "corrupt BMP (an RLE run leaves the image)");
    indices[static_cast<std::size_t>(y * l.width + x)] = index;
    ++x;
  };
  const bool four = l.compression == kRle4;
  std::size_t i = 0;
  while (i + 1 < data.size()) {
    const std::uint8_t count = byte(i), value = byte(i + 1);
    i += 2;
    if (count > 0) {  // a run: `count` pixels of one value (RLE4: two alternating nibbles)
      for (int k = 0; k < count; ++k) put(four ? (k % 2 ? value & 15 : value >> 4) : value);
    } else if (value == 0) {  // end of line
      x = 0;
      ++y;
    } else if (value == 1) {  // end of bitmap
      return indices;
    } else if (value == 2) {  // delta
      if (i + 1 >= data.size()) break;
      x += byte(i);
      y += byte(i + 1);
      i += 2;
    } else {  // `value` literal pixels, padded to a 16-bit boundary
      const std::size_t stored = four ? (value + 1) / 2 : value;
      if (i + stored > data.size()) break;
      for (int k = 0; k < value; ++k) {
        put(four ? (k % 2 ? byte(i + k / 2) & 15 : byte(i + k / 2) >> 4) : byte(i + k));
      }
      i += stored + (stored % 2);
    }
  }
  if (y >= l.height - 1) return indices;  // every row reached; the end marker is missing
  damaged(where, "BMP data is truncated (RLE data ends early)");
}

}  // namespace

std::optional<ImageHeader> bmp_header(std::span<const std::byte> bytes, const std::string& where) {
  if (bytes.size() < 2 || std::memcmp(bytes.data(), "BM", 2) != 0) return std::nullopt;
  if (bytes.size() < 26) damaged(where, "BMP data is truncated (header)");
  const std::uint32_t info_size = le32(bytes, 14);
  std::int64_t width = 0, height = 0;
  if (info_size == 12) {  // OS/2 BITMAPCOREHEADER
    width = le16(bytes, 18);
    height = le16(bytes, 20);
  } else if (info_size >= 40 && info_size <= 1024) {
    width = static_cast<std::int32_t>(le32(bytes, 18));
    height = static_cast<std::int32_t>(le32(bytes, 22));
    if (height < 0) height = -height;  // top-down rows
  } else {
    damaged(where, "corrupt BMP (unknown header of " + std::to_string(info_size) + " bytes)");
  }
  if (width <= 0 || height <= 0 || width > 0x7fffffff || height > 0x7fffffff) {
    damaged(where, "corrupt BMP (header says " + std::to_string(width) + "x" +
                       std::to_string(height) + " pixels)");
  }
  return ImageHeader{ImageFormat::kBmp, static_cast<int>(width), static_cast<int>(height)};
}

Image decode_bmp(std::span<const std::byte> bytes, const ImageHeader& header,
                 const std::string& where) {
  const Layout l = layout_of(bytes, header, where);
  const auto data = bytes.subspan(l.pixels_at);
  Image image;
  image.width = header.width;
  image.height = header.height;
  image.pixels.resize(static_cast<std::size_t>(l.width * l.height * 3));
  const auto store = [&](std::int64_t row, std::int64_t x, Rgb c) {  // row as stored
    const std::int64_t y = l.top_down ? row : l.height - 1 - row;
    float* out = image.pixels.data() + (y * l.width + x) * 3;
    out[0] = unit_from_u8(c.r);
    out[1] = unit_from_u8(c.g);
    out[2] = unit_from_u8(c.b);
  };

  if (l.compression == kRle8 || l.compression == kRle4) {
    const auto indices = rle_indices(data, l, where);
    for (std::int64_t row = 0; row < l.height; ++row) {
      for (std::int64_t x = 0; x < l.width; ++x)
        store(row, x, l.palette[indices[static_cast<std::size_t>(row * l.width + x)]]);
    }
    return image;
  }
  // No overflow: decode_image() checked width x height against the pixel limit.
  const std::uint64_t stride = (static_cast<std::uint64_t>(l.width) * l.bits + 31) / 32 * 4;
  if (stride * static_cast<std::uint64_t>(l.height) > data.size()) {
    damaged(where, "BMP data is truncated (" + std::to_string(data.size()) + " bytes of pixels, " +
                       std::to_string(stride * l.height) + " needed)");
  }
  const Channel red(l.masks[0]), green(l.masks[1]), blue(l.masks[2]);
  for (std::int64_t row = 0; row < l.height; ++row) {
    const std::byte* line = data.data() + row * stride;
    const auto at = [&](std::int64_t i) { return static_cast<std::uint8_t>(line[i]); };
    for (std::int64_t x = 0; x < l.width; ++x) {
      switch (l.bits) {
        case 1:
        case 4:
        case 8: {
          const std::int64_t bit = x * l.bits;
          const int index = (at(bit / 8) >> (8 - l.bits - bit % 8)) & ((1 << l.bits) - 1);
          store(row, x, l.palette[static_cast<std::size_t>(index)]);
          break;
        }
        case 24:
          store(row, x, {at(3 * x + 2), at(3 * x + 1), at(3 * x)});
          break;
        case 16: {
          const std::uint32_t pixel = at(2 * x) | (at(2 * x + 1) << 8);
          store(row, x, {red(pixel), green(pixel), blue(pixel)});
          break;
        }
        default: {  // 32
          const std::uint32_t pixel = at(4 * x) | (at(4 * x + 1) << 8) | (at(4 * x + 2) << 16) |
                                      (static_cast<std::uint32_t>(at(4 * x + 3)) << 24);
          store(row, x, {red(pixel), green(pixel), blue(pixel)});
        }
      }
    }
  }
  return image;
}

}  // namespace pv::codecs
