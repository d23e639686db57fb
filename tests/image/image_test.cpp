#include <cmath>

#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/image.h>

#include "testing.h"
#include "util/npy.h"

namespace pv {
namespace {

std::filesystem::path fixture_image(const std::string& name) {
  return testing::nn_fixtures() / "images" / name;
}

std::string error_of(const std::filesystem::path& path) {
  try {
    load_image(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
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
                                           "square224.png"),
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
  EXPECT_NE(message.find("not a PNG or JPEG"), std::string::npos) << message;
}

TEST(LoadImage, TruncatedPng) {
  testing::TempDir dir;
  const std::string bytes = testing::read_text(fixture_image("rgb8.png"));
  testing::write_text(dir / "cut.png", bytes.substr(0, bytes.size() / 2));
  const std::string message = error_of(dir / "cut.png");
  EXPECT_NE(message.find("cut.png"), std::string::npos);
  EXPECT_NE(message.find("corrupt or truncated PNG"), std::string::npos) << message;
}

TEST(LoadImage, CorruptPngData) {
  testing::TempDir dir;
  std::string bytes = testing::read_text(fixture_image("rgb8.png"));
  for (std::size_t i = 200; i < 400; ++i) bytes[i] = static_cast<char>(~bytes[i]);  // inside IDAT
  testing::write_text(dir / "flipped.png", bytes);
  EXPECT_NE(error_of(dir / "flipped.png").find("corrupt or truncated PNG"), std::string::npos);
}

TEST(LoadImage, TruncatedJpeg) {
  testing::TempDir dir;
  const std::string bytes = testing::read_text(fixture_image("photo.jpg"));
  testing::write_text(dir / "cut.jpg", bytes.substr(0, bytes.size() * 2 / 3));
  EXPECT_NE(error_of(dir / "cut.jpg").find("truncated"), std::string::npos);
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
