// The public Embedder, from image files to NHWC patch embeddings.
#include <gtest/gtest.h>

#include <patchvec/embedder.h>
#include <patchvec/error.h>

#include "nn/reference.h"

namespace pv {
namespace {

EmbedderOptions fixture_options(const std::string& backbone) {
  return {.backbone = backbone,
          .weights = testing::nn_fixtures() / (backbone + ".safetensors"),
          .batch_size = 3,  // 8 images: batches of 3, 3, 2
          .threads = 2};
}

// A view: `embeddings` must outlive the tensor.
at::Tensor as_nchw(const PatchEmbeddings& embeddings) {
  const auto& g = embeddings.grid;
  return at::from_blob(const_cast<float*>(embeddings.values.data()),
                       {embeddings.count, g.height, g.width, g.dim}, at::kFloat)
      .permute({0, 3, 1, 2});
}

class EmbedFiles : public ::testing::TestWithParam<std::string> {};

TEST_P(EmbedFiles, MatchesTheReferenceFromDecodeToEmbedding) {
  const Embedder embedder(fixture_options(GetParam()));
  EXPECT_TRUE(embedder.pretrained());
  EXPECT_TRUE(embedder.ready());
  const auto paths = testing::fixture_images();
  const PatchEmbeddings embeddings = embedder.embed(paths);
  ASSERT_EQ(embeddings.count, static_cast<std::int64_t>(paths.size()));
  EXPECT_EQ(embeddings.grid.height, 28);
  EXPECT_EQ(embeddings.grid.width, 28);
  EXPECT_EQ(embeddings.grid.dim, GetParam() == "resnet18" ? 384 : 1536);
  const at::Tensor expected = testing::load_reference(GetParam() + "_embedding.npy");
  EXPECT_LT(testing::relative_error(as_nchw(embeddings), expected), testing::kParityTolerance);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, EmbedFiles, ::testing::Values("resnet18", "wide_resnet50_2"));

TEST(Embedder, DecodedImagesGiveTheSameEmbeddingsAsFiles) {
  const Embedder embedder(fixture_options("resnet18"));
  const auto paths = testing::fixture_images();
  std::vector<Image> images;
  for (const auto& path : paths) images.push_back(load_image(path));
  const PatchEmbeddings from_files = embedder.embed(paths);
  const PatchEmbeddings from_images = embedder.embed(images);
  EXPECT_EQ(from_files.values, from_images.values);
}

TEST(Embedder, GridFollowsTheCropSize) {
  auto options = fixture_options("resnet18");
  options.image_size = 320;
  options.crop_size = 0;
  const Embedder embedder(options);
  EXPECT_EQ(embedder.grid().height, 40);
  const auto paths = testing::fixture_images();
  const auto embeddings = embedder.embed(std::span(paths).first(1));
  EXPECT_EQ(embeddings.values.size(), 40u * 40u * 384u);
}

TEST(Embedder, RandomInitialisationMustBeCalibratedFirst) {
  const Embedder embedder({.backbone = "resnet18", .seed = 5, .threads = 2});
  EXPECT_FALSE(embedder.pretrained());
  EXPECT_FALSE(embedder.ready());
  const auto paths = testing::fixture_images();
  EXPECT_THROW(embedder.embed(paths), Error);
}

TEST(Embedder, CalibratedRandomBackboneGivesNormalisedFeatures) {
  Embedder embedder({.backbone = "resnet18", .seed = 5, .batch_size = 4, .threads = 2});
  const auto paths = testing::fixture_images();
  embedder.calibrate(paths);
  ASSERT_TRUE(embedder.ready());
  const PatchEmbeddings result = embedder.embed(paths);
  const at::Tensor embeddings = as_nchw(result);
  EXPECT_TRUE(embeddings.isfinite().all().item<bool>());
  // After BatchNorm + ReLU the features are O(1); without calibration they blow up by orders of
  // magnitude through the residual stages.
  const double mean = embeddings.mean().item<double>();
  EXPECT_GT(mean, 0.05);
  EXPECT_LT(mean, 5.0);
}

TEST(Embedder, SameSeedSameEmbeddings) {
  const auto paths = testing::fixture_images();
  const auto run = [&] {
    Embedder embedder({.backbone = "resnet18", .seed = 9, .threads = 2});
    embedder.calibrate(paths);
    return embedder.embed(std::span(paths).first(2)).values;
  };
  EXPECT_EQ(run(), run());
}

TEST(Embedder, BadOptionsAreClearErrors) {
  EXPECT_THROW(Embedder({.backbone = "resnet1000"}), Error);
  EXPECT_THROW(Embedder({.backbone = "resnet18", .image_size = 200, .crop_size = 224}), Error);
  EXPECT_THROW(Embedder({.backbone = "resnet18", .batch_size = 0}), Error);
  try {
    Embedder({.backbone = "resnet18", .weights = "/nonexistent/w.safetensors"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/w.safetensors"), std::string::npos);
  }
}

TEST(Embedder, CorruptImageInABatchNamesTheFile) {
  testing::TempDir dir;
  testing::write_text(dir / "broken.png", "\x89PNG\r\n\x1a\n not really");
  std::vector<std::filesystem::path> paths = testing::fixture_images();
  paths.insert(paths.begin() + 4, dir / "broken.png");
  const Embedder embedder(fixture_options("resnet18"));
  try {
    embedder.embed(paths);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.png"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pv
