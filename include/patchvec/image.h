// Images as the rest of PatchVec sees them: RGB, float channels in [0, 1].
//
// PatchVec reads PNG, JPEG and BMP, told apart by their first bytes (never by the file name).
// Decoders treat every byte as hostile: the size comes from the header and is checked against
// ImageLimits before any pixel is allocated, and damaged data is an ImageError, never a crash
// or a line on stderr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <patchvec/error.h>

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

enum class ImageFormat { kPng, kJpeg, kBmp };

// The formats in words, for messages and help texts: "PNG, JPEG or BMP".
inline constexpr const char* kSupportedImageFormats = "PNG, JPEG or BMP";

// Decoding holds the image as floats (12 bytes a pixel) and preprocessing copies it once more,
// so an image of N pixels needs about 24 N bytes while it is read: 40 megapixels ~ 1 GB.
inline constexpr std::int64_t kImageBytesPerPixel = 24;
inline constexpr std::int64_t kDefaultMaxImagePixels = 40'000'000;

// What decoding may allocate, checked from the header before any pixel is decoded.
struct ImageLimits {
  std::int64_t max_pixels = kDefaultMaxImagePixels;  // width x height
  // What one image may take on its way to the network: what an image at the pixel limit takes
  // without tiling. Tiled models take more per pixel (their tiles' patch embeddings), and are held
  // to the same budget (Embedder::check_image()).
  std::int64_t max_bytes() const { return max_pixels * kImageBytesPerPixel; }
};

// Why an image could not be read. Programs map the kind to what they answer (the service:
// kNotAnImage -> 415, kTooLarge -> 413, kDamaged -> 422).
class ImageError : public Error {
 public:
  enum class Kind {
    kUnreadable,  // the file is missing, not a regular file, or cannot be read
    kNotAnImage,  // the bytes are no PNG, JPEG or BMP (other formats are named)
    kTooLarge,    // the header announces more pixels than ImageLimits allow
    kDamaged,     // corrupt or truncated data, a pixel layout PatchVec does not read (CMYK), or an
                  // image smaller than the model's tiles (TilingOptions)
  };
  ImageError(Kind kind, const std::string& message) : Error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct ImageHeader {
  ImageFormat format = ImageFormat::kPng;
  int width = 0;
  int height = 0;
};

// Format and size from the header alone, without decoding pixels. `name` identifies the bytes in
// messages. Throws ImageError (kNotAnImage, kDamaged).
ImageHeader read_image_header(std::span<const std::byte> bytes, std::string_view name);
// The same from a file (reads it; throws ImageError naming it).
ImageHeader read_image_header(const std::filesystem::path& path);

// Throws ImageError(kTooLarge) naming `name` if an image of this header exceeds `limits`.
void check_limits(const ImageHeader& header, const ImageLimits& limits, std::string_view name);

// Decodes PNG (1-16 bits; grey, grey+alpha, RGB, RGBA, palette; interlaced), JPEG (baseline,
// progressive; grey or colour) and BMP. Grey is replicated to RGB, alpha is dropped (as PIL's
// convert("RGB")), 16-bit samples are divided by 65535. EXIF orientation is ignored, as PIL does.
// Bytes after a JPEG's end marker are ignored (phones append such trailers). Throws ImageError
// naming `name`.
Image decode_image(std::span<const std::byte> bytes, std::string_view name,
                   const ImageLimits& limits = {});

// The same from a file. Throws ImageError naming the file; a FIFO or device is refused before it
// is opened for reading, so it cannot block.
Image load_image(const std::filesystem::path& path, const ImageLimits& limits = {});

// The bytes of an image file, read once, for callers that check the header themselves before
// decode_image(): a regular file no larger than `limits` allow for any image. Throws ImageError
// (kUnreadable) naming the file.
std::vector<std::byte> read_image_file(const std::filesystem::path& path,
                                       const ImageLimits& limits = {});

// An image from 8-bit samples held elsewhere (a numpy array, a camera's buffer): height rows of
// width pixels of `channels` samples (1: grey, replicated to RGB; 3: RGB; 4: RGBA, alpha dropped,
// as decode_image() does), pixel (y, x)'s channel c at data[y * row_stride + x * pixel_stride +
// c * channel_stride] (strides in bytes, any sign). Each value is what decoding a file of the
// same samples gives, so an array and its PNG file predict alike. Throws ImageError naming `name`:
// kDamaged for a size below 1 pixel or other channel counts, kTooLarge over `limits`.
Image image_from_samples(const std::uint8_t* data, int width, int height, int channels,
                         std::ptrdiff_t row_stride, std::ptrdiff_t pixel_stride,
                         std::ptrdiff_t channel_stride, std::string_view name,
                         const ImageLimits& limits = {});

// `image` as an 8-bit RGB PNG file (values rounded and saturated), written atomically. Throws
// pv::Error naming the file.
void write_png(const std::filesystem::path& path, const Image& image);

// True for the extensions of the formats above (.png, .jpg, .jpeg, .bmp; any case): what folder
// listings pick up.
bool has_image_extension(const std::filesystem::path& path);

}  // namespace pv
