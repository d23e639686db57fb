#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <patchvec/error.h>
#include <patchvec/image.h>

#include "util/files.h"

namespace pv {
namespace {

bool starts_with(std::span<const std::byte> bytes, std::span<const unsigned char> prefix) {
  return bytes.size() >= prefix.size() &&
         std::memcmp(bytes.data(), prefix.data(), prefix.size()) == 0;
}

constexpr std::array<unsigned char, 8> kPngSignature = {0x89, 'P',  'N',  'G',
                                                        '\r', '\n', 0x1a, '\n'};
constexpr std::array<unsigned char, 3> kJpegSignature = {0xff, 0xd8, 0xff};

// libjpeg pads a truncated file with grey and only warns; a complete JPEG ends with the EOI marker
// (some writers append zero padding after it).
bool jpeg_is_complete(std::span<const std::byte> bytes) {
  std::size_t end = bytes.size();
  while (end > 2 && bytes[end - 1] == std::byte{0}) --end;
  return end >= 2 && bytes[end - 2] == std::byte{0xff} && bytes[end - 1] == std::byte{0xd9};
}

cv::Mat to_float_rgb(const cv::Mat& decoded) {
  double scale = 1.0;
  switch (decoded.depth()) {
    case CV_8U:
      scale = 1.0 / 255.0;
      break;
    case CV_16U:
      scale = 1.0 / 65535.0;
      break;
    case CV_32F:
      break;
    default:
      return {};
  }
  cv::Mat rgb;
  switch (decoded.channels()) {
    case 1:
      cv::cvtColor(decoded, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 2: {  // grey + alpha
      cv::Mat grey;
      cv::extractChannel(decoded, grey, 0);
      cv::cvtColor(grey, rgb, cv::COLOR_GRAY2RGB);
      break;
    }
    case 3:
      cv::cvtColor(decoded, rgb, cv::COLOR_BGR2RGB);
      break;
    case 4:
      cv::cvtColor(decoded, rgb, cv::COLOR_BGRA2RGB);
      break;
    default:
      return {};
  }
  cv::Mat result;
  rgb.convertTo(result, CV_32FC3, scale);
  return result;
}

}  // namespace

std::optional<ImageSize> peek_image_size(std::span<const std::byte> bytes) {
  const auto byte_at = [&](std::size_t i) { return static_cast<unsigned>(bytes[i]); };
  const auto be16 = [&](std::size_t i) { return (byte_at(i) << 8) | byte_at(i + 1); };
  const auto be32 = [&](std::size_t i) { return (be16(i) << 16) | be16(i + 2); };
  if (starts_with(bytes, kPngSignature)) {  // the IHDR chunk comes first
    if (bytes.size() < 24) return std::nullopt;
    return ImageSize{static_cast<int>(std::min(be32(16), 0x7fffffffu)),
                     static_cast<int>(std::min(be32(20), 0x7fffffffu))};
  }
  if (starts_with(bytes, kJpegSignature)) {  // walk the markers to the first start-of-frame
    std::size_t i = 2;
    while (i + 9 < bytes.size()) {
      if (byte_at(i) != 0xff) return std::nullopt;
      const unsigned marker = byte_at(i + 1);
      if (marker == 0xff) {  // fill byte
        ++i;
        continue;
      }
      const bool frame =
          marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
      if (frame) return ImageSize{static_cast<int>(be16(i + 7)), static_cast<int>(be16(i + 5))};
      i += 2 + be16(i + 2);
    }
  }
  return std::nullopt;
}

Image decode_image(std::span<const std::byte> bytes, std::string_view name) {
  static const bool silenced = [] {  // we report failures ourselves, once, with the file name
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    cv::setNumThreads(0);
    return true;
  }();
  (void)silenced;
  const std::string where = "image " + std::string(name);
  if (bytes.empty()) throw Error(where + ": file is empty");
  const bool is_jpeg = starts_with(bytes, kJpegSignature);
  if (is_jpeg && !jpeg_is_complete(bytes)) throw Error(where + ": JPEG data is truncated");

  const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                       const_cast<std::byte*>(bytes.data()));
  cv::Mat decoded;
  try {
    decoded = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw Error(where + ": cannot decode: " + e.what());
  }
  if (decoded.empty()) {
    const bool is_png = starts_with(bytes, kPngSignature);
    throw Error(where + (is_png || is_jpeg ? ": corrupt or truncated " +
                                                 std::string(is_png ? "PNG" : "JPEG") + " data"
                                           : ": not a PNG or JPEG image (unknown format)"));
  }
  const cv::Mat rgb = to_float_rgb(decoded);
  if (rgb.empty()) {
    throw Error(where + ": unsupported pixel format (" + std::to_string(decoded.channels()) +
                " channels, OpenCV depth " + std::to_string(decoded.depth()) + ")");
  }
  Image image;
  image.width = rgb.cols;
  image.height = rgb.rows;
  image.pixels.resize(static_cast<std::size_t>(rgb.total()) * 3);
  // convertTo() allocates a fresh, hence continuous, matrix.
  std::memcpy(image.pixels.data(), rgb.ptr<float>(), image.pixels.size() * sizeof(float));
  return image;
}

Image load_image(const std::filesystem::path& path) {
  std::vector<std::byte> bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    throw Error(std::string("image: ") + e.what());
  }
  return decode_image(bytes, path.string());
}

bool has_image_extension(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static constexpr std::array<std::string_view, 6> kKnown = {".png", ".jpg", ".jpeg",
                                                             ".bmp", ".tif", ".tiff"};
  return std::find(kKnown.begin(), kKnown.end(), extension) != kKnown.end();
}

}  // namespace pv
