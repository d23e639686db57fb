// PNG through libpng, with our own error, warning and read functions: errors come back as
// ImageError, warnings are dropped (libpng's defaults print both to stderr), and reads never pass
// the end of the buffer.
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include <png.h>

#include "image/codecs.h"

namespace pv::codecs {
namespace {

constexpr unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

std::uint32_t be32(std::span<const std::byte> bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i)
    value = (value << 8) | static_cast<std::uint8_t>(bytes[at + i]);
  return value;
}

// Everything libpng's callbacks reach; plain data, as it lives across longjmp.
struct Source {
  std::span<const std::byte> bytes;
  std::size_t offset = 0;
  char message[200] = {};
};

void on_error(png_structp png, png_const_charp message) {
  auto* source = static_cast<Source*>(png_get_error_ptr(png));
  std::snprintf(source->message, sizeof source->message, "%s", message);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

void on_read(png_structp png, png_bytep out, png_size_t length) {
  auto* source = static_cast<Source*>(png_get_io_ptr(png));
  if (length > source->bytes.size() - source->offset) png_error(png, "truncated");
  std::memcpy(out, source->bytes.data() + source->offset, length);
  source->offset += length;
}

// Owns libpng's structures.
struct Reader {
  png_structp png = nullptr;
  png_infop info = nullptr;
  Source source;
  ~Reader() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

// The steps that may longjmp: nothing in them has a destructor.
bool read_info(Reader& r, std::uint32_t width, std::uint32_t height, int* bit_depth, int* passes,
               std::size_t* row_bytes) {
  if (setjmp(png_jmpbuf(r.png))) return false;
  png_set_user_limits(r.png, width, height);
  png_read_info(r.png, r.info);
  *bit_depth = png_get_bit_depth(r.png, r.info);
  const int color = png_get_color_type(r.png, r.info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r.png);
  if (color == PNG_COLOR_TYPE_GRAY && *bit_depth < 8) png_set_expand_gray_1_2_4_to_8(r.png);
  if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(r.png);
  if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(r.png);
  if (*bit_depth == 16) png_set_swap(r.png);  // native (little-endian) 16-bit samples
  if (*bit_depth < 8) *bit_depth = 8;
  *passes = png_set_interlace_handling(r.png);
  png_read_update_info(r.png, r.info);
  *row_bytes = png_get_rowbytes(r.png, r.info);
  return true;
}

bool read_row(Reader& r, png_bytep row) {
  if (setjmp(png_jmpbuf(r.png))) return false;
  png_read_row(r.png, row, nullptr);
  return true;
}

bool read_all(Reader& r, png_bytepp rows) {
  if (setjmp(png_jmpbuf(r.png))) return false;
  png_read_image(r.png, rows);
  return true;
}

void to_floats(const std::byte* row, int width, int bit_depth, float* out) {
  const std::size_t samples = static_cast<std::size_t>(width) * 3;
  if (bit_depth == 16) {
    for (std::size_t i = 0; i < samples; ++i) {
      std::uint16_t value;
      std::memcpy(&value, row + 2 * i, 2);
      out[i] = unit_from_u16(value);
    }
  } else {
    for (std::size_t i = 0; i < samples; ++i)
      out[i] = unit_from_u8(static_cast<std::uint8_t>(row[i]));
  }
}

}  // namespace

std::optional<ImageHeader> png_header(std::span<const std::byte> bytes, const std::string& where) {
  if (bytes.size() < sizeof kSignature ||
      std::memcmp(bytes.data(), kSignature, sizeof kSignature) != 0)
    return std::nullopt;
  // The IHDR chunk comes first: length 13, type, width, height.
  if (bytes.size() < 24 || be32(bytes, 8) != 13 || std::memcmp(bytes.data() + 12, "IHDR", 4) != 0)
    damaged(where, "corrupt PNG (no IHDR header)");
  const std::uint32_t width = be32(bytes, 16), height = be32(bytes, 20);
  if (width == 0 || height == 0 || width > 0x7fffffffu || height > 0x7fffffffu) {
    damaged(where, "corrupt PNG (header says " + std::to_string(width) + "x" +
                       std::to_string(height) + " pixels)");
  }
  return ImageHeader{ImageFormat::kPng, static_cast<int>(width), static_cast<int>(height)};
}

Image decode_png(std::span<const std::byte> bytes, const ImageHeader& header,
                 const std::string& where) {
  Reader r;
  r.source.bytes = bytes;
  r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r.source, on_error, on_warning);
  if (r.png == nullptr) throw Error(where + ": cannot start the PNG decoder");
  r.info = png_create_info_struct(r.png);
  if (r.info == nullptr) throw Error(where + ": cannot start the PNG decoder");
  png_set_read_fn(r.png, &r.source, on_read);
  const auto fail = [&] {
    damaged(where, std::string("corrupt or truncated PNG data (") + r.source.message + ")");
  };

  int bit_depth = 8, passes = 1;
  std::size_t row_bytes = 0;
  if (!read_info(r, static_cast<std::uint32_t>(header.width),
                 static_cast<std::uint32_t>(header.height), &bit_depth, &passes, &row_bytes)) {
    fail();
  }
  const std::size_t sample_bytes = static_cast<std::size_t>(bit_depth / 8);
  if (row_bytes != static_cast<std::size_t>(header.width) * 3 * sample_bytes) {
    damaged(where, "corrupt PNG (unexpected row layout)");
  }
  Image image;
  image.width = header.width;
  image.height = header.height;
  image.pixels.resize(static_cast<std::size_t>(header.width) * header.height * 3);
  const std::size_t row_floats = static_cast<std::size_t>(header.width) * 3;
  if (passes == 1) {  // row by row: only one row of samples besides the floats
    std::vector<std::byte> row(row_bytes);
    for (int y = 0; y < header.height; ++y) {
      if (!read_row(r, reinterpret_cast<png_bytep>(row.data()))) fail();
      to_floats(row.data(), header.width, bit_depth, image.pixels.data() + y * row_floats);
    }
  } else {  // Adam7 interlacing fills rows over seven passes: the whole image at once
    std::vector<std::byte> samples(row_bytes * static_cast<std::size_t>(header.height));
    std::vector<png_bytep> rows(static_cast<std::size_t>(header.height));
    for (int y = 0; y < header.height; ++y)
      rows[y] = reinterpret_cast<png_bytep>(samples.data() + y * row_bytes);
    if (!read_all(r, rows.data())) fail();
    for (int y = 0; y < header.height; ++y) {
      to_floats(samples.data() + y * row_bytes, header.width, bit_depth,
                image.pixels.data() + y * row_floats);
    }
  }
  return image;
}

}  // namespace pv::codecs
