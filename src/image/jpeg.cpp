// JPEG through libjpeg(-turbo) with our own error manager: errors and data-losing warnings
// (a truncated file, corrupt entropy data) come back as ImageError; other warnings are dropped
// instead of printed. Decoding settings are libjpeg's defaults, as PIL's and OpenCV's.
#include <csetjmp>
#include <cstdio>
#include <vector>

// jpeglib.h needs size_t and FILE declared first, and jerror.h needs jpeglib.h.
#include <jpeglib.h>
// (keeps the order)
#include <jerror.h>

#include "image/codecs.h"

namespace pv::codecs {
namespace {

// Progressive files may hold any number of scans, each a pass over the whole image: a few
// hundred bytes can cost minutes. Real encoders write at most a few dozen.
constexpr int kMaxScans = 500;

struct ErrorManager {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
};

[[noreturn]] void on_error(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

bool loses_data(int code) {
  return code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
         code == JWRN_MUST_RESYNC || code == JWRN_ARITH_BAD_CODE || code == JWRN_BOGUS_PROGRESSION;
}

void on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && loses_data(cinfo->err->msg_code)) on_error(cinfo);
}

void on_progress(j_common_ptr cinfo) {
  if (cinfo->is_decompressor &&
      reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number > kMaxScans) {
    auto* errors = reinterpret_cast<ErrorManager*>(cinfo->err);
    std::snprintf(errors->message, sizeof errors->message, "more than %d scans", kMaxScans);
    std::longjmp(errors->jump, 1);
  }
}

struct Decoder {
  jpeg_decompress_struct cinfo{};
  ErrorManager errors;
  jpeg_progress_mgr progress{};
  bool created = false;
  ~Decoder() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

enum class Step { kOk, kFailed, kCmyk };

// The steps that may longjmp: nothing in them has a destructor.
Step start(Decoder& d, std::span<const std::byte> bytes) {
  if (setjmp(d.errors.jump)) return Step::kFailed;
  jpeg_mem_src(&d.cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&d.cinfo, TRUE);
  if (d.cinfo.jpeg_color_space == JCS_CMYK || d.cinfo.jpeg_color_space == JCS_YCCK)
    return Step::kCmyk;
  d.cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&d.cinfo);
  return Step::kOk;
}

bool read_row(Decoder& d, JSAMPROW row) {
  if (setjmp(d.errors.jump)) return false;
  return jpeg_read_scanlines(&d.cinfo, &row, 1) == 1;
}

bool finish(Decoder& d) {
  if (setjmp(d.errors.jump)) return false;
  jpeg_finish_decompress(&d.cinfo);
  return true;
}

std::size_t be16(std::span<const std::byte> bytes, std::size_t at) {
  return (static_cast<std::size_t>(bytes[at]) << 8) | static_cast<std::size_t>(bytes[at + 1]);
}

}  // namespace

std::optional<ImageHeader> jpeg_header(std::span<const std::byte> bytes, const std::string& where) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned>(bytes[i]); };
  if (bytes.size() < 3 || byte(0) != 0xff || byte(1) != 0xd8 || byte(2) != 0xff)
    return std::nullopt;
  // Walk the markers to the first start-of-frame, as libjpeg does.
  std::size_t i = 2;
  while (i + 4 <= bytes.size()) {
    if (byte(i) != 0xff) break;
    const unsigned marker = byte(i + 1);
    if (marker == 0xff) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {  // markers without a length
      i += 2;
      continue;
    }
    if (marker == 0xd9 || marker == 0xda) break;  // end of image, or scan data before a frame
    const std::size_t length = be16(bytes, i + 2);
    if (length < 2) break;
    const bool frame =
        marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (frame) {
      if (i + 9 > bytes.size() || length < 7) break;
      const auto height = static_cast<int>(be16(bytes, i + 5));
      const auto width = static_cast<int>(be16(bytes, i + 7));
      if (width == 0 || height == 0) {
        damaged(where, "corrupt JPEG (header says " + std::to_string(width) + "x" +
                           std::to_string(height) + " pixels)");
      }
      return ImageHeader{ImageFormat::kJpeg, width, height};
    }
    i += 2 + length;
  }
  damaged(where, i + 4 > bytes.size() ? "JPEG data is truncated (no frame header)"
                                      : "corrupt JPEG (no frame header)");
}

Image decode_jpeg(std::span<const std::byte> bytes, const ImageHeader& header,
                  const std::string& where) {
  Decoder d;
  d.cinfo.err = jpeg_std_error(&d.errors.pub);
  d.errors.pub.error_exit = on_error;
  d.errors.pub.emit_message = on_message;
  jpeg_create_decompress(&d.cinfo);
  d.created = true;
  d.progress.progress_monitor = on_progress;
  d.cinfo.progress = &d.progress;
  const auto fail = [&] {
    const std::string message = d.errors.message;
    damaged(where, message.find("Premature end") != std::string::npos
                       ? "JPEG data is truncated"
                       : "corrupt JPEG data (" + message + ")");
  };

  const Step started = start(d, bytes);
  if (started == Step::kFailed) fail();
  if (started == Step::kCmyk) {
    damaged(where, "CMYK JPEG: PatchVec reads grey and colour (YCbCr/RGB) JPEGs; save it as RGB");
  }
  if (static_cast<int>(d.cinfo.output_width) != header.width ||
      static_cast<int>(d.cinfo.output_height) != header.height || d.cinfo.output_components != 3) {
    damaged(where, "corrupt JPEG (frame does not match its header)");
  }
  Image image;
  image.width = header.width;
  image.height = header.height;
  const std::size_t row_floats = static_cast<std::size_t>(header.width) * 3;
  image.pixels.resize(row_floats * header.height);
  std::vector<JSAMPLE> row(row_floats);
  for (int y = 0; y < header.height; ++y) {
    if (!read_row(d, row.data())) fail();
    float* out = image.pixels.data() + y * row_floats;
    for (std::size_t i = 0; i < row_floats; ++i) out[i] = unit_from_u8(row[i]);
  }
  if (!finish(d)) fail();
  return image;
}

}  // namespace pv::codecs
