#include "nn/preprocess.h"

#include <gtest/gtest.h>

#include <patchvec/error.h>

#include "nn/reference.h"

namespace pv::nn {
namespace {

TEST(Preprocess, MatchesTorchvisionAntialiasedResizeCropAndNormalise) {
  for (const auto& path : testing::fixture_images()) {
    const at::Tensor actual = preprocess(load_image(path), PreprocessOptions{});
    const at::Tensor expected =
        testing::load_reference("preprocessed/" + path.filename().string() + ".npy");
    EXPECT_LT(testing::relative_error(actual, expected), 1e-6) << path.filename();
  }
}

TEST(Preprocess, OutputSizeFollowsTheOptions) {
  const Image image = load_image(testing::fixture_images().front());
  EXPECT_EQ(preprocess(image, {.image_size = 128, .crop_size = 96}).sizes(),
            (std::vector<std::int64_t>{3, 96, 96}));
  EXPECT_EQ(preprocess(image, {.image_size = 100, .crop_size = 0}).sizes(),
            (std::vector<std::int64_t>{3, 100, 100}));
}

TEST(Preprocess, CropOffsetRoundsLikeTorchvision) {
  // A horizontal ramp: after the crop the first column tells the offset.
  Image ramp{.width = 9, .height = 9};
  for (int y = 0; y < 9; ++y) {
    for (int x = 0; x < 9; ++x) {
      for (int c = 0; c < 3; ++c) ramp.pixels.push_back(x / 8.f);
    }
  }
  // (9 - 6) / 2 = 1.5 rounds to 2 (half to even), as Python's round() in center_crop.
  const at::Tensor cropped = preprocess(ramp, {.image_size = 9, .crop_size = 6});
  const at::Tensor full = preprocess(ramp, {.image_size = 9, .crop_size = 0});
  EXPECT_TRUE(at::equal(cropped, full.narrow(1, 2, 6).narrow(2, 2, 6)));
}

TEST(Preprocess, RejectsImpossibleSizes) {
  EXPECT_THROW(validate({.image_size = 0, .crop_size = 0}), Error);
  EXPECT_THROW(validate({.image_size = 224, .crop_size = 256}), Error);
  EXPECT_THROW(validate({.image_size = 224, .crop_size = -1}), Error);
  EXPECT_NO_THROW(validate({.image_size = 256, .crop_size = 256}));
}

}  // namespace
}  // namespace pv::nn
