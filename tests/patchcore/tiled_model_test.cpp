// Models that cut images into tiles: a single tile covering the image is the untiled model, tiled
// maps cover the whole scaled image, and the model file keeps the tiling.
#include <filesystem>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/model.h>

#include "image/render.h"
#include "patchcore/model_file.h"
#include "testing.h"

namespace pv {
namespace {

std::filesystem::path fixtures() {
  return testing::fixture_dir() / "patchcore";
}

// The fixture dataset's images are 192 x 192.
std::vector<std::filesystem::path> images(bool test) {
  const Category category = read_category(fixtures() / "data", "synthetic");
  std::vector<std::filesystem::path> paths;
  for (const auto& s : test ? category.test : category.train) paths.push_back(s.image);
  return paths;
}

PatchCoreOptions options(TilingOptions tiling = {}) {
  PatchCoreOptions o;
  o.embedder = {.backbone = "resnet18",
                .weights = fixtures() / "resnet18.safetensors",
                .image_size = 192,
                .crop_size = 0,
                .tiling = tiling,
                .threads = 2};
  return o;
}

class TiledModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("patchvec_tiled_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A copy of a fixture image resized to width x height.
  std::filesystem::path resized(const std::filesystem::path& from, int width, int height,
                                const std::string& name) {
    cv::Mat image = render::to_bgr8(load_image(from)), out;
    cv::resize(image, out, {width, height});
    const auto path = dir_ / name;
    render::write_png(path, out);
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(TiledModel, ASingleTileCoveringTheImageIsTheUntiledModel) {
  const Model plain = Model::fit(images(false), "synthetic", options());
  const Model tiled = Model::fit(images(false), "synthetic", options({.size = 192, .overlap = 32}));
  const auto a = plain.predict(images(true));
  const auto b = tiled.predict(images(true));
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].score, b[i].score) << i;
    EXPECT_EQ(b[i].map.width, 192);
    EXPECT_EQ(b[i].map.height, 192);
    EXPECT_EQ(a[i].map.values, b[i].map.values) << i;
    EXPECT_EQ(a[i].patch_distances, b[i].patch_distances) << i;
    EXPECT_EQ(a[i].embedding, b[i].embedding) << i;
  }
}

TEST_F(TiledModel, MapsCoverTheScaledImageAndTheScoreIsTheHighestTiles) {
  const TilingOptions tiling{.size = 96, .overlap = 16, .scale = 1.0};
  PatchCoreOptions one_at_a_time = options(tiling);
  // oneDNN may pick another convolution for 8 small tiles than for one, which changes the last
  // bits of the features; one tile per forward pass compares the tiles bit for bit.
  one_at_a_time.embedder.batch_size = 1;
  const Model model = Model::fit(images(false), "synthetic", one_at_a_time);
  EXPECT_EQ(model.info().grid.height, 12);  // 96 / 8
  // 192 at scale 1: tiles at 0, 80, 96 in each direction.
  const std::vector<std::filesystem::path> one = {images(true).front()};
  const Prediction p = model.predict(one).front();
  EXPECT_EQ(p.map.width, 192);
  EXPECT_EQ(p.map.height, 192);
  ASSERT_EQ(p.patch_distances.size(), 9u * 12 * 12);
  for (const float v : p.map.values) ASSERT_TRUE(std::isfinite(v));
  // The image score is the highest of the tiles' own scores: scoring each tile as an image of
  // its own (a 96-pixel crop is one tile) gives them.
  const Image image = load_image(one.front());
  float highest = -1;
  for (const int y : {0, 80, 96}) {
    for (const int x : {0, 80, 96}) {
      Image tile{.width = 96, .height = 96};
      for (int r = 0; r < 96; ++r) {
        const auto row = image.pixels.begin() + ((y + r) * 192 + x) * 3;
        tile.pixels.insert(tile.pixels.end(), row, row + 96 * 3);
      }
      highest = std::max(highest, model.predict(tile).score);
    }
  }
  EXPECT_EQ(p.score, highest);
  // The same through predict(Image) and on larger images: a 300 x 250 image at scale 1.
  EXPECT_EQ(model.predict(image).score, p.score);
  const auto big = resized(one.front(), 300, 250, "big.png");
  const Prediction q = model.predict(std::vector{big}).front();
  EXPECT_EQ(q.map.width, 300);
  EXPECT_EQ(q.map.height, 250);
}

TEST_F(TiledModel, TheModelFileKeepsTheTilingAndLoadCanChangeIt) {
  const TilingOptions tiling{.size = 96, .overlap = 16, .scale = 0.75};
  const Model model = Model::fit(images(false), "synthetic", options(tiling));
  const auto path = dir_ / "tiled.pvm";
  model.save(path);
  const Model loaded = Model::load(path);
  const auto& t = loaded.info().options.embedder.tiling;
  EXPECT_EQ(t.size, 96);
  EXPECT_EQ(t.overlap, 16);
  EXPECT_EQ(t.scale, 0.75);
  EXPECT_EQ(loaded.info().options.embedder.image_size, 96);
  EXPECT_EQ(loaded.info().options.embedder.crop_size, 0);
  const auto a = model.predict(images(true));
  const auto b = loaded.predict(images(true));
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].score, b[i].score);
    EXPECT_EQ(a[i].map.values, b[i].map.values);
    EXPECT_EQ(a[i].map.width, 144);  // 192 * 0.75
  }
  // Another overlap changes the layout, not the map's size.
  const Model wider = Model::load(path, {.tiling = {.overlap = 40}});
  EXPECT_EQ(wider.info().options.embedder.tiling.overlap, 40);
  EXPECT_EQ(wider.predict(images(true)).front().map.width, 144);
  // Asking for what cannot be: tiles off on a tiled model, an overlap without tiles.
  EXPECT_THROW(Model::load(path, {.tiling = {.size = 0}}), Error);
  const auto plain_path = dir_ / "plain.pvm";
  Model::fit(images(false), "synthetic", options()).save(plain_path);
  try {
    Model::load(plain_path, {.tiling = {.overlap = 8}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("need --tile"), std::string::npos) << e.what();
  }
}

TEST_F(TiledModel, ForgedTilingFieldsAreRejected) {
  const auto path = dir_ / "tiled.pvm";
  Model::fit(images(false), "synthetic", options({.size = 96, .overlap = 16})).save(path);
  patchcore::ModelFileContents contents = patchcore::read_model_file(path);
  auto forged = [&](const std::function<void(nlohmann::json&)>& change) {
    patchcore::ModelFileContents copy = contents;
    change(copy.metadata);
    const auto out = dir_ / "forged.pvm";
    patchcore::write_model_file(out, {.metadata = copy.metadata,
                                      .bank = copy.bank,
                                      .batchnorm = copy.batchnorm,
                                      .backbone = copy.backbone});
    try {
      Model::load(out);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(forged([](nlohmann::json& j) {
              j["preprocess"]["tiling"]["size"] = 128;
            }).find("preprocess.tiling.size"),
            std::string::npos);
  EXPECT_NE(forged([](nlohmann::json& j) {
              j["preprocess"]["tiling"]["overlap"] = 90;
            }).find("preprocess.tiling.overlap"),
            std::string::npos);
  EXPECT_NE(forged([](nlohmann::json& j) {
              j["preprocess"]["tiling"]["scale"] = -1;
            }).find("preprocess.tiling.scale"),
            std::string::npos);
  EXPECT_NE(forged([](nlohmann::json& j) { j["preprocess"]["tiling"] = "big"; }), "");
}

TEST_F(TiledModel, ImagesTooSmallOrOfAnotherSizeAreClearErrors) {
  const TilingOptions tiling{.size = 128, .overlap = 16};
  std::vector<std::filesystem::path> train = images(false);
  train.push_back(resized(train.front(), 200, 160, "other.png"));
  try {
    Model::fit(train, "synthetic", options(tiling));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("other.png is 200x160"), std::string::npos) << e.what();
  }
  train.pop_back();
  const Model model = Model::fit(train, "synthetic", options(tiling));
  const std::vector<std::filesystem::path> small = {resized(train.front(), 100, 150, "small.png"),
                                                    images(true).front()};
  EXPECT_THROW(model.predict(small), ImageError);
  std::vector<std::string> unreadable;
  const auto predictions = model.predict(small, "predict", nullptr, &unreadable);
  EXPECT_NE(unreadable[0].find("smaller than one 128-pixel tile"), std::string::npos)
      << unreadable[0];
  EXPECT_TRUE(std::isnan(predictions[0].score));
  EXPECT_TRUE(unreadable[1].empty());
  EXPECT_TRUE(std::isfinite(predictions[1].score));
}

}  // namespace
}  // namespace pv
