#include <chrono>
#include <cmath>
#include <future>
#include <thread>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/image.h>
#include <patchvec/npy.h>

#include "image/render.h"
#include "testing.h"

namespace pv {
namespace {

std::filesystem::path fixture_image(const std::string& name) {
  const auto format = testing::nn_fixtures() / "formats" / name;
  return std::filesystem::exists(format) ? format : testing::nn_fixtures() / "images" / name;
}

std::string error_of(const std::filesystem::path& path, const ImageLimits& limits = {}) {
  try {
    load_image(path, limits);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

ImageError::Kind kind_of(const std::filesystem::path& path, const ImageLimits& limits = {}) {
  try {
    load_image(path, limits);
  } catch (const ImageError& e) {
    return e.kind();
  }
  ADD_FAILURE() << path << " decoded";
  return ImageError::Kind::kUnreadable;
}

std::span<const std::byte> as_bytes(const std::string& text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

// A PNG signature and IHDR announcing width x height, and nothing else.
std::string png_header_only(std::uint32_t width, std::uint32_t height) {
  std::string bytes = "\x89PNG\r\n\x1a\n";
  const auto be32 = [&](std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((v >> shift) & 0xff);
  };
  be32(13);
  bytes += "IHDR";
  be32(width);
  be32(height);
  bytes += std::string("\x08\x02\x00\x00\x00", 5);
  be32(0);  // CRC (never reached)
  return bytes;
}

// Everything written to stderr while `run` runs.
template <typename Run>
std::string stderr_of(Run run) {
  std::fflush(stderr);
  int pipe_fds[2];
  EXPECT_EQ(::pipe(pipe_fds), 0);
  const int saved = ::dup(2);
  ::dup2(pipe_fds[1], 2);
  ::close(pipe_fds[1]);
  run();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) out.append(buffer, n);
  ::close(pipe_fds[0]);
  return out;
}

class DecodeMatchesPil : public ::testing::TestWithParam<std::string> {};

TEST_P(DecodeMatchesPil, SameSizeAndPixels) {
  const Image image = load_image(fixture_image(GetParam()));
  const FloatArray expected = read_npy(testing::nn_fixtures() / "decoded" / (GetParam() + ".npy"));
  ASSERT_EQ(expected.shape.size(), 3u);
  ASSERT_EQ(image.height, expected.shape[0]);
  ASSERT_EQ(image.width, expected.shape[1]);
  ASSERT_EQ(image.pixels.size(), expected.values.size());
  float worst = 0;
  for (std::size_t i = 0; i < expected.values.size(); ++i) {
    worst = std::max(worst, std::abs(image.pixels[i] - expected.values[i]));
  }
  EXPECT_LT(worst, 1e-6) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Formats, DecodeMatchesPil,
                         ::testing::Values("rgb8.png", "grey8.png", "grey16.png", "rgba8.png",
                                           "palette.png", "grey_alpha.png", "photo.jpg",
                                           "square224.png", "interlaced.png", "rgb16.png",
                                           "rgb16_interlaced.png", "bits1.png", "grey.jpg",
                                           "progressive.jpg", "subsampled.jpg", "trailer.jpg",
                                           "rgb24.bmp", "palette8.bmp", "bits1.bmp", "rgba32.bmp",
                                           "rle8.bmp", "topdown.bmp"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) c = std::isalnum(c) ? c : '_';
                           return name;
                         });

TEST(LoadImage, MissingFileNamesIt) {
  const std::string message = error_of("/nonexistent/a.png");
  EXPECT_NE(message.find("/nonexistent/a.png"), std::string::npos) << message;
}

TEST(LoadImage, EmptyFile) {
  testing::TempDir dir;
  testing::write_text(dir / "empty.png", "");
  EXPECT_NE(error_of(dir / "empty.png").find("empty"), std::string::npos);
}

TEST(LoadImage, TextFileWithImageName) {
  testing::TempDir dir;
  testing::write_text(dir / "notes.png", "this is not an image");
  const std::string message = error_of(dir / "notes.png");
  EXPECT_NE(message.find("notes.png"), std::string::npos);
  EXPECT_NE(message.find("not an image (PatchVec reads PNG, JPEG or BMP)"), std::string::npos)
      << message;
  EXPECT_EQ(kind_of(dir / "notes.png"), ImageError::Kind::kNotAnImage);
}

TEST(LoadImage, OtherFormatsAreNamed) {
  const std::string message = error_of(fixture_image("tiny.tif"));
  EXPECT_NE(message.find("TIFF is not supported"), std::string::npos) << message;
  EXPECT_EQ(kind_of(fixture_image("tiny.tif")), ImageError::Kind::kNotAnImage);
}

TEST(LoadImage, CmykJpegIsRefusedAsUnreadableContent) {
  const std::string message = error_of(fixture_image("cmyk.jpg"));
  EXPECT_NE(message.find("CMYK JPEG"), std::string::npos) << message;
  EXPECT_EQ(kind_of(fixture_image("cmyk.jpg")), ImageError::Kind::kDamaged);
}

TEST(LoadImage, TooManyPixelsIsRefusedFromTheHeader) {
  // 20000 x 20000 announced in 33 bytes: refused before anything is allocated.
  const std::string bytes = png_header_only(20000, 20000);
  try {
    decode_image(as_bytes(bytes), "huge.png");
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_EQ(e.kind(), ImageError::Kind::kTooLarge);
    EXPECT_NE(std::string(e.what()).find("20000x20000 pixels is more than the limit"),
              std::string::npos)
        << e.what();
  }
  const ImageHeader header = read_image_header(as_bytes(bytes), "huge.png");
  EXPECT_EQ(header.width, 20000);
  EXPECT_EQ(header.format, ImageFormat::kPng);
  EXPECT_EQ(kind_of(fixture_image("rgb8.png"), {.max_pixels = 1000}), ImageError::Kind::kTooLarge);
  EXPECT_EQ(kind_of(fixture_image("photo.jpg"), {.max_pixels = 1000}), ImageError::Kind::kTooLarge);
  EXPECT_EQ(kind_of(fixture_image("rgb24.bmp"), {.max_pixels = 1000}), ImageError::Kind::kTooLarge);
}

TEST(LoadImage, HeaderWithZeroSideIsDamaged) {
  try {
    read_image_header(as_bytes(png_header_only(0, 5)), "zero.png");
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_EQ(e.kind(), ImageError::Kind::kDamaged);
  }
}

TEST(LoadImage, AFifoIsRefusedWithoutBlocking) {
  testing::TempDir dir;
  const auto fifo = dir / "camera.png";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto reading = std::async(std::launch::async, [&] { return error_of(fifo); });
  if (reading.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    const int writer = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // unblocks the reader
    ::close(writer);
    FAIL() << "reading a FIFO blocked";
  }
  const std::string message = reading.get();
  EXPECT_NE(message.find("not a regular file"), std::string::npos) << message;
  EXPECT_NE(message.find("camera.png"), std::string::npos) << message;
}

TEST(LoadImage, AFolderIsNotAnImage) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir / "shots.png");
  EXPECT_NE(error_of(dir / "shots.png").find("is a folder"), std::string::npos);
}

TEST(LoadImage, DecodersPrintNothing) {
  testing::TempDir dir;
  std::string png = testing::read_text(fixture_image("rgb8.png"));
  for (std::size_t i = 200; i < 400; ++i) png[i] = static_cast<char>(~png[i]);
  std::string jpeg = testing::read_text(fixture_image("photo.jpg"));
  jpeg.replace(jpeg.size() / 2, 2, "\xff\xd9");  // an end marker in the middle of the scan
  const std::string printed = stderr_of([&] {
    EXPECT_THROW(decode_image(as_bytes(png), "flipped.png"), ImageError);
    EXPECT_THROW(decode_image(as_bytes(jpeg), "flipped.jpg"), ImageError);
    EXPECT_THROW(decode_image(as_bytes(png.substr(0, 100)), "cut.png"), ImageError);
    std::string bmp = testing::read_text(fixture_image("rgb24.bmp"));
    bmp[30] = '\x09';  // an unknown compression: OpenCV's reader printed it to stderr
    EXPECT_THROW(decode_image(as_bytes(bmp), "odd.bmp"), ImageError);
    const std::string rle = testing::read_text(fixture_image("rle8.bmp"));
    EXPECT_THROW(decode_image(as_bytes(rle.substr(0, rle.size() / 2)), "cut.bmp"), ImageError);
  });
  EXPECT_EQ(printed, "");
}

TEST(LoadImage, JpegTrailerAfterTheEndMarkerIsIgnored) {
  const Image clean = load_image(fixture_image("progressive.jpg"));
  const Image with_trailer = load_image(fixture_image("trailer.jpg"));
  EXPECT_EQ(clean.pixels, with_trailer.pixels);
}

TEST(Render, PicturesStayBoundedWhateverTheAspect) {
  // A 10000 x 2 upload once made a 1,920,000 x 384 heatmap (12 GB).
  const cv::Size wide = render::display_size(10000, 2, 384);
  EXPECT_LE(wide.width, render::kMaxDisplayAspect * 384);
  EXPECT_GE(wide.height, 1);
  const cv::Size tall = render::display_size(2, 10000, 384);
  EXPECT_EQ(tall.height, 384);
  EXPECT_GE(tall.width, 1);
  const cv::Size normal = render::display_size(300, 200, 360);
  EXPECT_EQ(normal, cv::Size(540, 360));
  Image image{.width = 10000, .height = 2};
  image.pixels.assign(10000 * 2 * 3, 0.5f);
  const std::vector<float> map(28 * 28, 0.7f);
  const cv::Mat overlay = render::original_overlay(image, map, 28, 28, 256, 224, 384);
  EXPECT_LE(overlay.cols, render::kMaxDisplayAspect * 384);
  EXPECT_LE(overlay.rows, 384);
}

TEST(DecodeImage, FromMemoryUsesTheGivenName) {
  const std::string bytes = "garbage";
  try {
    decode_image(std::as_bytes(std::span(bytes.data(), bytes.size())), "upload #3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("upload #3"), std::string::npos);
  }
}

TEST(HasImageExtension, KnownExtensionsInAnyCase) {
  EXPECT_TRUE(has_image_extension("a/b.PNG"));
  EXPECT_TRUE(has_image_extension("b.jpeg"));
  EXPECT_TRUE(has_image_extension("b.JPG"));
  EXPECT_FALSE(has_image_extension("b.txt"));
  EXPECT_FALSE(has_image_extension("png"));
}

}  // namespace
}  // namespace pv
