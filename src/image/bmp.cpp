// BMP through OpenCV's own reader (it prints nothing), after the header was checked here.
#include <cstring>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>

#include "image/codecs.h"

namespace pv::codecs {
namespace {

std::uint32_t le32(std::span<const std::byte> bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (std::size_t i = 4; i-- > 0;) value = (value << 8) | static_cast<std::uint8_t>(bytes[at + i]);
  return value;
}

std::uint16_t le16(std::span<const std::byte> bytes, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<std::uint8_t>(bytes[at]) |
                                    (static_cast<std::uint8_t>(bytes[at + 1]) << 8));
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
  } else if (info_size >= 40 && bytes.size() >= 26) {
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
  static const bool silenced = [] {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    cv::setNumThreads(0);
    return true;
  }();
  (void)silenced;
  const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                       const_cast<std::byte*>(bytes.data()));
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(buffer, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    damaged(where, std::string("corrupt BMP data (") + e.err + ")");
  }
  if (bgr.empty()) damaged(where, "corrupt or truncated BMP data");
  if (bgr.cols != header.width || bgr.rows != header.height || bgr.type() != CV_8UC3) {
    damaged(where, "corrupt BMP (pixels do not match its header)");
  }
  Image image;
  image.width = bgr.cols;
  image.height = bgr.rows;
  image.pixels.resize(static_cast<std::size_t>(bgr.total()) * 3);
  float* out = image.pixels.data();
  for (int y = 0; y < bgr.rows; ++y) {
    const auto* row = bgr.ptr<std::uint8_t>(y);
    for (int x = 0; x < bgr.cols; ++x, out += 3) {
      out[0] = unit_from_u8(row[3 * x + 2]);
      out[1] = unit_from_u8(row[3 * x + 1]);
      out[2] = unit_from_u8(row[3 * x]);
    }
  }
  return image;
}

}  // namespace pv::codecs
