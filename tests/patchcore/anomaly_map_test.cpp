#include "patchcore/anomaly_map.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <patchvec/error.h>

namespace pv::patchcore {
namespace {

TEST(AnomalyMap, KernelSizeIsAnomalibs) {
  EXPECT_EQ(gaussian_kernel_size(4.0), 33);
  EXPECT_EQ(gaussian_kernel_size(2.0), 17);
}

TEST(AnomalyMap, ConstantScoresStayConstant) {
  const at::Tensor maps = anomaly_maps(at::full({2, 28, 28}, 3.5f), {.size = 224});
  EXPECT_EQ(maps.sizes(), (std::vector<std::int64_t>{2, 224, 224}));
  EXPECT_TRUE(at::allclose(maps, at::full({2, 224, 224}, 3.5f), 1e-5, 1e-5));
}

TEST(AnomalyMap, BlurSpreadsAPeakAndKeepsItsMass) {
  at::Tensor scores = at::zeros({1, 28, 28});
  scores[0][14][14] = 1.0f;
  for (const auto mode : {MapUpsampling::kBilinear, MapUpsampling::kNearest}) {
    const at::Tensor maps = anomaly_maps(scores, {.size = 224, .upsampling = mode});
    const at::Tensor upsampled =
        mode == MapUpsampling::kNearest
            ? at::upsample_nearest2d(scores.unsqueeze(1), {224, 224})
            : at::upsample_bilinear2d(scores.unsqueeze(1), {224, 224}, false);
    EXPECT_NEAR(maps.sum().item<double>(), upsampled.sum().item<double>(),
                1e-3);  // far from borders
    EXPECT_LT(maps.max().item<float>(), upsampled.max().item<float>());
    // The peak stays where the patch is: patch 14 covers pixels 112..119.
    const auto peak = maps.view({-1}).argmax().item<std::int64_t>();
    EXPECT_NEAR(peak / 224, 115.5, 4);
    EXPECT_NEAR(peak % 224, 115.5, 4);
  }
}

TEST(AnomalyMap, NearestAndBilinearDiffer) {
  const at::Tensor scores = at::rand({1, 28, 28});
  EXPECT_FALSE(at::allclose(anomaly_maps(scores, {.upsampling = MapUpsampling::kNearest}),
                            anomaly_maps(scores, {.upsampling = MapUpsampling::kBilinear})));
}

TEST(AnomalyMap, TooSmallForTheBlurIsAnError) {
  EXPECT_THROW(anomaly_maps(at::zeros({1, 4, 4}), {.size = 16}), Error);
}

}  // namespace
}  // namespace pv::patchcore
