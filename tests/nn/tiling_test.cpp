// Tiling's geometry: where tiles lie, what they hold, and how their maps stitch back.
#include "nn/tiling.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <patchvec/error.h>

#include "nn/preprocess.h"

namespace pv::nn {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Every pixel of each side lies in a tile, and tiles stay inside the image.
void expect_covers(const std::vector<int>& origins, int size, int extent) {
  std::vector<int> covered(static_cast<std::size_t>(extent), 0);
  for (const int o : origins) {
    ASSERT_GE(o, 0);
    ASSERT_LE(o + size, extent);
    for (int x = o; x < o + size; ++x) ++covered[static_cast<std::size_t>(x)];
  }
  for (int x = 0; x < extent; ++x) EXPECT_GT(covered[static_cast<std::size_t>(x)], 0) << x;
}

TEST(TileLayout, TilesStepByTheStrideAndTheLastEndsAtTheBorder) {
  // 1024 x 768 at half scale: 512 x 384, tiles of 256 every 224.
  const TileLayout layout = tile_layout(1024, 768, {.size = 256, .overlap = 32, .scale = 0.5});
  EXPECT_EQ(layout.width, 512);
  EXPECT_EQ(layout.height, 384);
  EXPECT_EQ(layout.xs, (std::vector<int>{0, 224, 256}));
  EXPECT_EQ(layout.ys, (std::vector<int>{0, 128}));
  EXPECT_EQ(layout.count(), 6u);
  expect_covers(layout.xs, 256, 512);
  expect_covers(layout.ys, 256, 384);
  // Odd sizes and no overlap: edge tiles still end exactly at the border.
  const TileLayout odd = tile_layout(301, 97, {.size = 64, .overlap = 0});
  EXPECT_EQ(odd.xs, (std::vector<int>{0, 64, 128, 192, 237}));
  EXPECT_EQ(odd.ys, (std::vector<int>{0, 33}));
  expect_covers(odd.xs, 64, 301);
  expect_covers(odd.ys, 64, 97);
}

TEST(TileLayout, AnImageOfOneTileIsOneTile) {
  const TileLayout layout = tile_layout(192, 192, {.size = 192, .overlap = 32});
  EXPECT_EQ(layout.xs, std::vector<int>{0});
  EXPECT_EQ(layout.ys, std::vector<int>{0});
}

TEST(TileLayout, BadSettingsAndSmallImagesAreOneClearError) {
  EXPECT_NE(error_of([] { validate(TilingOptions{.size = 16}); }).find("--tile must be"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { validate(TilingOptions{.size = 64, .overlap = 33}); }).find("--tile-overlap"),
      std::string::npos);
  EXPECT_NE(error_of([] { validate(TilingOptions{.size = 64, .scale = 0}); }).find("--tile-scale"),
            std::string::npos);
  const std::string small =
      error_of([] { tile_layout(300, 200, {.size = 256, .overlap = 32, .scale = 1}); });
  EXPECT_NE(small.find("300x200"), std::string::npos) << small;
  EXPECT_NE(small.find("smaller than one 256-pixel tile"), std::string::npos) << small;
}

TEST(TileLayout, BlendWeightsAddUpToOneAndAreExactlyOneWhereATileIsAlone) {
  const std::vector<int> origins = {0, 80, 96};  // uneven: the last overlaps its neighbour more
  const int size = 96, extent = 192;
  std::vector<double> total(extent, 0.0);
  std::vector<int> tiles(extent, 0);
  for (std::size_t t = 0; t < origins.size(); ++t) {
    const std::vector<float> w = blend_weights(origins, size, t);
    for (int i = 0; i < size; ++i) {
      EXPECT_GT(w[static_cast<std::size_t>(i)], 0.0f);
      total[static_cast<std::size_t>(origins[t] + i)] += w[static_cast<std::size_t>(i)];
      ++tiles[static_cast<std::size_t>(origins[t] + i)];
    }
  }
  for (int x = 0; x < extent; ++x) EXPECT_NEAR(total[x], 1.0, 1e-6) << x;
  const std::vector<float> first = blend_weights(origins, size, 0);
  for (int x = 0; x < 80; ++x) EXPECT_EQ(first[static_cast<std::size_t>(x)], 1.0f) << x;
}

TEST(Stitch, ConstantTilesStitchIntoTheConstant) {
  const TileLayout layout = tile_layout(301, 197, {.size = 64, .overlap = 16});
  const at::Tensor tiles = at::full({static_cast<std::int64_t>(layout.count()), 64, 64}, 2.5f);
  const at::Tensor map = stitch(tiles, layout);
  EXPECT_EQ(map.sizes(), (std::vector<std::int64_t>{197, 301}));
  EXPECT_LT((map - 2.5f).abs().max().item<float>(), 1e-6f);
}

TEST(Stitch, TilesCutFromAMapStitchBackIntoIt) {
  const TileLayout layout = tile_layout(250, 180, {.size = 64, .overlap = 20});
  const at::Tensor whole = at::rand({180, 250}, at::kFloat) * 10;
  std::vector<at::Tensor> tiles;
  for (const int y : layout.ys) {
    for (const int x : layout.xs) tiles.push_back(whole.narrow(0, y, 64).narrow(1, x, 64));
  }
  const at::Tensor map = stitch(at::stack(tiles), layout);
  EXPECT_LT((map - whole).abs().max().item<float>(), 1e-5f);
  EXPECT_NE(error_of([&] { stitch(at::stack(tiles).narrow(0, 0, 2), layout); }), "");
}

// An image whose pixel (x, y) is the colour (x, y, 0) / 1000, so a tile's first pixel tells where
// it was cut from.
Image coordinates(int width, int height) {
  Image image{.width = width, .height = height};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      image.pixels.insert(image.pixels.end(), {x / 1000.f, y / 1000.f, 0.f});
    }
  }
  return image;
}

TEST(PreprocessTiles, EdgeTilesHoldTheImageAtTheirPlace) {
  const Image image = coordinates(300, 260);
  PreprocessOptions options{.tiling = {.size = 128, .overlap = 16}};
  TileLayout layout;
  const at::Tensor tiles = preprocess_inputs(image, options, &layout);
  ASSERT_EQ(tiles.sizes(),
            (std::vector<std::int64_t>{static_cast<std::int64_t>(layout.count()), 3, 128, 128}));
  EXPECT_EQ(layout.xs.back(), 300 - 128);
  EXPECT_EQ(layout.ys.back(), 260 - 128);
  // Undo the ImageNet normalisation of the red and green channels: x / 1000 and y / 1000.
  for (std::size_t j = 0; j < layout.ys.size(); ++j) {
    for (std::size_t i = 0; i < layout.xs.size(); ++i) {
      const at::Tensor tile = tiles[static_cast<std::int64_t>(j * layout.xs.size() + i)];
      for (const auto& [dy, dx] : {std::pair{0, 0}, {127, 127}, {5, 100}}) {
        const float red = tile[0][dy][dx].item<float>() * 0.229f + 0.485f;
        const float green = tile[1][dy][dx].item<float>() * 0.224f + 0.456f;
        EXPECT_NEAR(red * 1000, layout.xs[i] + dx, 1e-3);
        EXPECT_NEAR(green * 1000, layout.ys[j] + dy, 1e-3);
      }
    }
  }
}

TEST(PreprocessTiles, AConstantImageGivesIdenticalTiles) {
  Image image{.width = 400, .height = 300};
  image.pixels.assign(400 * 300 * 3, 0.25f);
  TileLayout layout;
  const at::Tensor tiles =
      preprocess_inputs(image, {.tiling = {.size = 96, .overlap = 8, .scale = 0.75}}, &layout);
  EXPECT_EQ(layout.width, 300);
  EXPECT_EQ(layout.height, 225);
  for (std::int64_t t = 1; t < tiles.size(0); ++t) EXPECT_TRUE(at::equal(tiles[t], tiles[0])) << t;
}

TEST(PreprocessTiles, AnImageSmallerThanATileIsAnImageError) {
  Image image{.width = 100, .height = 300};
  image.pixels.assign(100 * 300 * 3, 0.5f);
  TileLayout layout;
  try {
    preprocess_inputs(image, {.tiling = {.size = 128}}, &layout);
    FAIL() << "no error";
  } catch (const ImageError& e) {
    EXPECT_EQ(e.kind(), ImageError::Kind::kDamaged);
    EXPECT_NE(std::string(e.what()).find("smaller than one 128-pixel tile"), std::string::npos);
  }
}

}  // namespace
}  // namespace pv::nn
