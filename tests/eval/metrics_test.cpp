#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <patchvec/error.h>
#include <patchvec/metrics.h>
#include <patchvec/npy.h>

#include "testing.h"

namespace pv {
namespace {

using Labels = std::vector<std::uint8_t>;
using Scores = std::vector<float>;

TEST(Auroc, HandCheckedCases) {
  EXPECT_DOUBLE_EQ(auroc(Scores{0.1f, 0.2f, 0.8f, 0.9f}, Labels{0, 0, 1, 1}), 1.0);  // perfect
  EXPECT_DOUBLE_EQ(auroc(Scores{0.9f, 0.8f, 0.2f, 0.1f}, Labels{0, 0, 1, 1}), 0.0);  // inverted
  EXPECT_DOUBLE_EQ(auroc(Scores{0.5f, 0.5f, 0.5f, 0.5f}, Labels{0, 1, 0, 1}), 0.5);  // all tied
  // scikit-learn's documentation example.
  EXPECT_DOUBLE_EQ(auroc(Scores{0.1f, 0.4f, 0.35f, 0.8f}, Labels{0, 0, 1, 1}), 0.75);
  // A tie between a normal and an anomalous sample counts one half: pairs (n, a) =
  // (1,2) win, (1,1) tie, (3,2) loss, (3,1) loss -> 1.5 / 4.
  EXPECT_DOUBLE_EQ(auroc(Scores{1, 1, 3, 2}, Labels{0, 1, 0, 1}), 0.375);
}

TEST(Auroc, OneClassOnlyIsAnError) {
  EXPECT_THROW(auroc(Scores{0.1f, 0.2f}, Labels{0, 0}), Error);
  EXPECT_THROW(auroc(Scores{0.1f, 0.2f}, Labels{1, 1}), Error);
  EXPECT_THROW(auroc(Scores{0.1f, 0.2f}, Labels{1}), Error);
}

TEST(RocCurve, StepsAtDistinctScores) {
  const RocCurve curve = roc_curve(Scores{0.1f, 0.4f, 0.4f, 0.8f}, Labels{0, 0, 1, 1});
  ASSERT_EQ(curve.fpr.size(), 4u);  // start + 3 distinct scores
  EXPECT_EQ(curve.thresholds, (std::vector<float>{0.8f, 0.4f, 0.1f}));
  EXPECT_DOUBLE_EQ(curve.tpr[1], 0.5);
  EXPECT_DOUBLE_EQ(curve.fpr[2], 0.5);  // the tie moves both at once
  EXPECT_DOUBLE_EQ(curve.tpr[2], 1.0);
  EXPECT_DOUBLE_EQ(curve.fpr.back(), 1.0);
}

TEST(F1Threshold, HandChecked) {
  // Flagging >= 0.35 catches all three anomalies and nothing else.
  const F1Threshold best =
      f1_optimal_threshold(Scores{0.1f, 0.3f, 0.6f, 0.7f, 0.35f}, Labels{0, 0, 1, 1, 1});
  EXPECT_FLOAT_EQ(best.threshold, 0.35f);  // TP 3, FP 0: F1 = 1
  EXPECT_DOUBLE_EQ(best.f1, 1.0);
  const F1Threshold tied =
      f1_optimal_threshold(Scores{0.1f, 0.3f, 0.6f, 0.7f, 0.2f}, Labels{0, 0, 1, 1, 1});
  EXPECT_FLOAT_EQ(tied.threshold, 0.2f);  // F1 = 6/7 at 0.2 beats 0.8 at 0.6
  EXPECT_NEAR(tied.f1, 6.0 / 7.0, 1e-12);
}

TEST(ConformalThreshold, HandChecked) {
  const std::vector<float> scores = {5, 1, 9, 3, 7, 2, 10, 4, 8, 6};  // 1..10, any order
  // n = 10, R = 0.2: the ceil(11 * 0.8) = 9th smallest, 9; flagged strictly above it.
  const ConformalThreshold t = conformal_threshold(scores, 0.2);
  EXPECT_EQ(t.threshold, std::nextafter(9.0f, 20.0f));
  EXPECT_DOUBLE_EQ(t.rate, 0.2);
  EXPECT_FALSE(t.tightened);
  EXPECT_EQ(t.n, 10u);
  EXPECT_EQ(conformal_threshold(scores, 0.5).threshold, std::nextafter(6.0f, 20.0f));  // 5.5 -> 6th
  // R = 0.05 needs 19 scores: the tightest 10 support is 1/11, with the largest score.
  const ConformalThreshold tight = conformal_threshold(scores, 0.05);
  EXPECT_TRUE(tight.tightened);
  EXPECT_DOUBLE_EQ(tight.rate, 1.0 / 11);
  EXPECT_EQ(tight.threshold, std::nextafter(10.0f, 20.0f));
  // Lower bounds: the floor(0.2 * 11) = 2nd smallest; 0.05 is tightened to the smallest.
  EXPECT_EQ(conformal_lower_bound(scores, 0.2).threshold, 2.0f);
  const ConformalThreshold low = conformal_lower_bound(scores, 0.05);
  EXPECT_EQ(low.threshold, 1.0f);
  EXPECT_TRUE(low.tightened);
  EXPECT_THROW(conformal_threshold({}, 0.1), Error);
  EXPECT_THROW(conformal_threshold(scores, 0), Error);
  EXPECT_THROW(conformal_threshold(scores, 1), Error);
  const std::vector<float> with_nan = {1, std::nanf("")};
  EXPECT_THROW(conformal_threshold(with_nan, 0.1), Error);
}

TEST(Pro, PerfectMapScoresOne) {
  std::vector<float> map(16, 0.f);
  std::vector<std::uint8_t> mask(16, 0);
  for (const int i : {5, 6, 9}) {  // one region of 3 pixels
    map[i] = 1.f;
    mask[i] = 1;
  }
  const PixelMap image{map, mask, 4, 4};
  EXPECT_NEAR(pro_score(std::span(&image, 1)), 1.0, 1e-12);
}

TEST(Pro, RegionsCountEquallyWhateverTheirSize) {
  // Two regions in a 1 x 10 strip (4-connected regions are also 8-connected here):
  // a big one (pixels 0-3) caught only at the low threshold, a small one (pixel 9) caught first.
  std::vector<float> map = {0.5f, 0.5f, 0.5f, 0.5f, 0.f, 0.f, 0.f, 0.f, 0.f, 1.f};
  std::vector<std::uint8_t> mask = {1, 1, 1, 1, 0, 0, 0, 0, 0, 1};
  const PixelMap image{map, mask, 10, 1};
  // At t = 1: FPR 0, PRO 0.5; at t = 0.5: FPR 0, PRO 1; then FPR jumps to 1 at t = 0.
  EXPECT_NEAR(pro_score(std::span(&image, 1)), 1.0, 1e-12);
  map[9] = 0.f;  // the small region is now never ahead of the normal pixels
  // t = 0.5: PRO 0.5, FPR 0; t = 0: PRO 1, FPR 1 -> within FPR <= 0.3 the curve rises
  // linearly from 0.5 to 0.65: area 0.3 * 0.575, normalised 0.575.
  EXPECT_NEAR(pro_score(std::span(&image, 1)), 0.575, 1e-12);
}

TEST(Pro, NeedsRegionsAndNormalPixels) {
  std::vector<float> map(4, 0.f);
  std::vector<std::uint8_t> none(4, 0), all(4, 1);
  const PixelMap empty{map, none, 2, 2}, full{map, all, 2, 2};
  EXPECT_THROW(pro_score(std::span(&empty, 1)), Error);
  EXPECT_THROW(pro_score(std::span(&full, 1)), Error);
}

// The same arrays through scikit-learn / scipy (tests/fixtures/make_metric_fixtures.py).
class AgainstPython : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto dir = testing::fixture_dir() / "metrics";
    std::ifstream in(dir / "expected.json");
    expected_ = nlohmann::json::parse(in);
    scores_ = read_npy(dir / "image_scores.npy").values;
    for (const float l : read_npy(dir / "image_labels.npy").values) labels_.push_back(l > 0.5f);
    maps_ = read_npy(dir / "maps.npy");
    for (const float m : read_npy(dir / "masks.npy").values) masks_.push_back(m > 0.5f);
  }
  nlohmann::json expected_;
  std::vector<float> scores_;
  Labels labels_;
  FloatArray maps_;
  Labels masks_;
};

TEST_F(AgainstPython, ImageAurocAndF1Threshold) {
  EXPECT_NEAR(auroc(scores_, labels_), expected_["image_auroc"].get<double>(), 1e-12);
  const F1Threshold best = f1_optimal_threshold(scores_, labels_);
  EXPECT_FLOAT_EQ(best.threshold, expected_["f1_threshold"].get<float>());
  EXPECT_NEAR(best.f1, expected_["f1"].get<double>(), 1e-8);
}

TEST_F(AgainstPython, PixelAurocAndPro) {
  EXPECT_NEAR(auroc(maps_.values, masks_), expected_["pixel_auroc"].get<double>(), 1e-9);
  const int count = static_cast<int>(maps_.shape[0]);
  const int height = static_cast<int>(maps_.shape[1]);
  const int width = static_cast<int>(maps_.shape[2]);
  const std::size_t pixels = static_cast<std::size_t>(height) * width;
  std::vector<PixelMap> images;
  for (int i = 0; i < count; ++i) {
    images.push_back({std::span(maps_.values).subspan(i * pixels, pixels),
                      std::span(masks_).subspan(i * pixels, pixels), width, height});
  }
  EXPECT_NEAR(pro_score(images), expected_["pro"].get<double>(), 1e-9);
}

}  // namespace
}  // namespace pv
