// The whole of PatchCore against a PyTorch implementation of anomalib's algorithm
// (tests/fixtures/make_patchcore_fixtures.py): same images, same seeded random weights.
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <patchvec/dataset.h>
#include <patchvec/model.h>
#include <patchvec/npy.h>

#include "testing.h"

namespace pv {
namespace {

std::filesystem::path fixtures() {
  return testing::fixture_dir() / "patchcore";
}

struct Split {
  std::vector<std::filesystem::path> train;
  std::vector<std::filesystem::path> test;  // good first, then blob: the generator's order
};

Split read_split() {
  const Category category = read_category(fixtures() / "data", "synthetic");
  Split split;
  for (const auto& s : category.train) split.train.push_back(s.image);
  for (const auto& s : category.test) split.test.push_back(s.image);
  return split;
}

PatchCoreOptions options(double ratio, int neighbors) {
  PatchCoreOptions o;
  o.embedder = {
      .backbone = "resnet18", .weights = fixtures() / "resnet18.safetensors", .threads = 2};
  o.coreset_ratio = ratio;
  o.num_neighbors = neighbors;
  return o;
}

std::vector<float> reference(const std::string& name) {
  return read_npy(fixtures() / name).values;
}

class Parity : public ::testing::TestWithParam<int> {};

TEST_P(Parity, ImageScoresAndMapsMatchPyTorch) {
  const int neighbors = GetParam();
  const Split split = read_split();
  const Model model = Model::fit(split.train, "synthetic", options(1.0, neighbors));
  EXPECT_EQ(model.info().bank_size, 6 * 28 * 28);
  const std::vector<Prediction> predictions = model.predict(split.test);
  const auto expected = reference(neighbors == 1 ? "scores_k1.npy" : "scores_k9.npy");
  ASSERT_EQ(predictions.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(predictions[i].score, expected[i], 1e-3 * std::abs(expected[i])) << split.test[i];
  }
  if (neighbors == 9) {  // maps do not depend on the re-weighting
    const FloatArray maps = read_npy(fixtures() / "maps.npy");
    const std::size_t pixels = 224 * 224;
    for (std::size_t i = 0; i < predictions.size(); ++i) {
      ASSERT_EQ(predictions[i].map.values.size(), pixels);
      float worst = 0, peak = 0;
      for (std::size_t p = 0; p < pixels; ++p) {
        worst =
            std::max(worst, std::abs(predictions[i].map.values[p] - maps.values[i * pixels + p]));
        peak = std::max(peak, std::abs(maps.values[i * pixels + p]));
      }
      EXPECT_LT(worst, 1e-3 * peak) << split.test[i];
    }
  }
  // The defects score higher than every good image: the pipeline is not only equal but useful.
  EXPECT_GT(std::min({predictions[3].score, predictions[4].score, predictions[5].score}),
            std::max({predictions[0].score, predictions[1].score, predictions[2].score}));
}

INSTANTIATE_TEST_SUITE_P(NumNeighbors, Parity, ::testing::Values(9, 1));

class Coreset : public ::testing::TestWithParam<CoresetMethod> {};

TEST_P(Coreset, CoveringRadiusWithinFivePercentOfAnomalibs) {
  const Split split = read_split();
  PatchCoreOptions o = options(0.1, 9);
  o.coreset = GetParam();
  const Model model = Model::fit(split.train, "synthetic", o);
  EXPECT_EQ(model.info().options.coreset, GetParam());
  std::ifstream in(fixtures() / "coreset.json");
  const auto expected = nlohmann::json::parse(in);
  EXPECT_EQ(model.info().bank_size, expected["size"].get<std::int64_t>());
  // Every training patch's distance to its nearest bank patch, in the full 384-d space: the
  // largest is the coreset's covering radius.
  float radius = 0;
  for (const Prediction& p : model.predict(split.train)) {
    radius =
        std::max(radius, *std::max_element(p.patch_distances.begin(), p.patch_distances.end()));
  }
  const double reference_radius = expected["covering_radius"].get<double>();
  RecordProperty("covering_radius", std::to_string(radius));
  RecordProperty("reference_covering_radius", std::to_string(reference_radius));
  EXPECT_NEAR(radius, reference_radius, 0.05 * reference_radius);
}

INSTANTIATE_TEST_SUITE_P(Methods, Coreset,
                         ::testing::Values(CoresetMethod::kExact, CoresetMethod::kFast),
                         [](const auto& info) { return coreset_method_name(info.param); });

}  // namespace
}  // namespace pv
