// A camera's raw frames to PNG: every pixel format gives back the colours the camera saw, decoded
// by the library's own decoder (what the inspection reads).
#include "station/frame_png.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include <patchvec/image.h>

namespace pv::station {
namespace {

constexpr int kWidth = 12, kHeight = 8;
constexpr std::array<std::uint8_t, 3> kColour = {200, 40, 90};  // R, G, B

Image decode(const std::vector<std::byte>& png) {
  return decode_image(png, "frame");
}

void expect_colour(const Image& image, int y, int x, std::array<std::uint8_t, 3> rgb,
                   const std::string& what) {
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(std::lround(image.at(y, x, c) * 255), rgb[static_cast<std::size_t>(c)])
        << what << " at (" << y << ", " << x << ") channel " << c;
  }
}

// A uniform colour as a Bayer sensor with `pattern` (the first row's first two colours, then the
// second row's) records it.
std::vector<std::byte> mosaic(const char* pattern) {
  const auto sample = [&](char colour) {
    return std::byte{colour == 'R' ? kColour[0] : colour == 'G' ? kColour[1] : kColour[2]};
  };
  std::vector<std::byte> raw(static_cast<std::size_t>(kWidth * kHeight));
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      raw[static_cast<std::size_t>(y * kWidth + x)] = sample(pattern[(y % 2) * 2 + (x % 2)]);
    }
  }
  return raw;
}

TEST(FramePng, EachBayerPatternGivesBackTheColourItRecorded) {
  // GenICam names a pattern by the first row's first two pixels; OpenCV by the second row's.
  const std::array<std::pair<PixelLayout, const char*>, 4> patterns = {{
      {PixelLayout::kBayerRG8, "RGGB"},
      {PixelLayout::kBayerGR8, "GRBG"},
      {PixelLayout::kBayerGB8, "GBRG"},
      {PixelLayout::kBayerBG8, "BGGR"},
  }};
  for (const auto& [layout, pattern] : patterns) {
    const Image image = decode(frame_png(mosaic(pattern), kWidth, kHeight, kWidth, layout));
    ASSERT_EQ(image.width, kWidth);
    ASSERT_EQ(image.height, kHeight);
    // Away from the border, where demosaicing has every neighbour.
    for (int y = 2; y < kHeight - 2; ++y) {
      for (int x = 2; x < kWidth - 2; ++x) {
        expect_colour(image, y, x, kColour, std::string(pixel_layout_name(layout)));
      }
    }
  }
}

TEST(FramePng, MonoIsGreyAndColourKeepsItsOrder) {
  std::vector<std::byte> mono(static_cast<std::size_t>(kWidth * kHeight), std::byte{77});
  const Image grey = decode(frame_png(mono, kWidth, kHeight, kWidth, PixelLayout::kMono8));
  expect_colour(grey, 3, 5, {77, 77, 77}, "Mono8");

  // Mono16, little-endian, with 4 bytes of padding at the end of each row; kept as 16 bits.
  const std::size_t stride = kWidth * 2 + 4;
  std::vector<std::byte> deep(stride * kHeight, std::byte{0xEE});
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      deep[y * stride + x * 2] = std::byte{0x34};
      deep[y * stride + x * 2 + 1] = std::byte{0x12};
    }
  }
  const Image wide = decode(frame_png(deep, kWidth, kHeight, stride, PixelLayout::kMono16));
  EXPECT_FLOAT_EQ(wide.at(7, 11, 0), static_cast<float>(0x1234 / 65535.0));
  EXPECT_FLOAT_EQ(wide.at(7, 11, 2), static_cast<float>(0x1234 / 65535.0));
  // An odd padding (found by fuzzing: OpenCV refused the rows and threw past the lane).
  const std::size_t odd = kWidth * 2 + 3;
  std::vector<std::byte> skewed(odd * kHeight, std::byte{0xEE});
  for (std::size_t y = 0; y < kHeight; ++y) {
    for (std::size_t x = 0; x < kWidth; ++x) {
      skewed[y * odd + x * 2] = std::byte{0x34};
      skewed[y * odd + x * 2 + 1] = std::byte{0x12};
    }
  }
  const Image packed = decode(frame_png(skewed, kWidth, kHeight, odd, PixelLayout::kMono16));
  EXPECT_FLOAT_EQ(packed.at(7, 11, 1), static_cast<float>(0x1234 / 65535.0));

  std::vector<std::byte> rgb, bgr;
  for (int i = 0; i < kWidth * kHeight; ++i) {
    for (int c = 0; c < 3; ++c) {
      rgb.push_back(std::byte{kColour[static_cast<std::size_t>(c)]});
      bgr.push_back(std::byte{kColour[static_cast<std::size_t>(2 - c)]});
    }
  }
  expect_colour(decode(frame_png(rgb, kWidth, kHeight, kWidth * 3, PixelLayout::kRgb8)), 0, 0,
                kColour, "RGB8");
  expect_colour(decode(frame_png(bgr, kWidth, kHeight, kWidth * 3, PixelLayout::kBgr8)), 0, 0,
                kColour, "BGR8");
}

TEST(FramePng, AFrameShorterThanItsSizeOrOfNoSizeIsRefused) {
  const std::vector<std::byte> raw(static_cast<std::size_t>(kWidth * kHeight) - 1);
  EXPECT_THROW(frame_png(raw, kWidth, kHeight, kWidth, PixelLayout::kMono8), ImageError);
  EXPECT_THROW(frame_png(raw, kWidth, kHeight, kWidth - 1, PixelLayout::kMono8), ImageError);
  EXPECT_THROW(frame_png(raw, 0, kHeight, kWidth, PixelLayout::kMono8), ImageError);
  EXPECT_THROW(frame_png(raw, -3, -3, kWidth, PixelLayout::kMono8), ImageError);
  EXPECT_EQ(parse_pixel_layout("YUV422"), std::nullopt);
  EXPECT_EQ(parse_pixel_layout("BayerGB8"), PixelLayout::kBayerGB8);
}

}  // namespace
}  // namespace pv::station
