// The synthetic dataset generator: deterministic, masks that match their defects, MVTec layout.
#include <cmath>

#include <gtest/gtest.h>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/image.h>
#include <patchvec/synth.h>

#include "testing.h"

namespace pv {
namespace {

struct MaskAgreement {
  std::size_t changed_outside = 0;  // pixels the defect changed outside its mask
  std::size_t changed_inside = 0;
  std::size_t mask_pixels = 0;
  std::size_t mask_in_crop = 0;  // mask pixels inside the model's centre crop (224 of 256)
};

MaskAgreement compare(const synth::Surface& s, int size) {
  MaskAgreement a;
  const int margin = size * 16 / 256;
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const std::size_t i = std::size_t(y) * size + x;
      bool changed = false;
      for (int c = 0; c < 3; ++c) changed |= s.image.pixels[i * 3 + c] != s.clean.pixels[i * 3 + c];
      if (s.mask[i]) {
        ++a.mask_pixels;
        a.changed_inside += changed;
        a.mask_in_crop += x >= margin && x < size - margin && y >= margin && y < size - margin;
      } else {
        a.changed_outside += changed;
      }
    }
  }
  return a;
}

double mean_abs_difference(const Image& a, const Image& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(a.pixels[i] - b.pixels[i]);
  return sum / a.pixels.size();
}

TEST(Synth, SameSpecGivesTheSamePixels) {
  for (const std::string& category : synth::category_names()) {
    const synth::SurfaceSpec spec{.category = category,
                                  .defect = synth::defect_types(category).front(),
                                  .index = 3,
                                  .seed = 11};
    const synth::Surface a = synth::render(spec), b = synth::render(spec);
    EXPECT_EQ(a.image.pixels, b.image.pixels) << category;
    EXPECT_EQ(a.mask, b.mask) << category;
  }
}

TEST(Synth, SeedIndexAndStreamChangeTheImage) {
  const synth::SurfaceSpec base{.category = "tile", .index = 0, .seed = 1};
  const Image reference = synth::render(base).image;
  synth::SurfaceSpec other = base;
  other.seed = 2;
  EXPECT_GT(mean_abs_difference(reference, synth::render(other).image), 0.02);
  other = base;
  other.index = 1;
  EXPECT_GT(mean_abs_difference(reference, synth::render(other).image), 0.02);
  other = base;
  other.stream = "test";
  EXPECT_GT(mean_abs_difference(reference, synth::render(other).image), 0.02);
}

TEST(Synth, NormalImagesAreNotAllAlike) {
  // Brightness, layout and grain vary: consecutive normal images differ clearly.
  for (const std::string& category : synth::category_names()) {
    const Image a = synth::render({.category = category, .index = 0}).image;
    const Image b = synth::render({.category = category, .index = 1}).image;
    EXPECT_GT(mean_abs_difference(a, b), 0.01) << category;
  }
}

TEST(Synth, EveryMaskMatchesItsDefect) {
  constexpr int kSize = 256;
  for (const std::string& category : synth::category_names()) {
    for (const std::string& defect : synth::defect_types(category)) {
      for (int index = 0; index < 6; ++index) {
        const synth::Surface s = synth::render(
            {.category = category, .defect = defect, .stream = "test", .index = index});
        const std::string what = category + "/" + defect + "/" + std::to_string(index);
        ASSERT_EQ(s.mask.size(), std::size_t(kSize) * kSize) << what;
        const MaskAgreement a = compare(s, kSize);
        EXPECT_EQ(a.changed_outside, 0u) << what << ": pixels changed outside the mask";
        EXPECT_GT(a.mask_pixels, 8u) << what << ": empty mask";
        // Most of the mask is visibly changed (closing gaps in re-rendered grids adds a few
        // unchanged pixels, soft edges round to the clean value now and then).
        EXPECT_GT(a.changed_inside, a.mask_pixels / 3) << what;
        EXPECT_GT(a.mask_in_crop, a.mask_pixels / 2) << what << ": defect outside the crop";
      }
    }
  }
}

TEST(Synth, GoodImagesHaveNoMask) {
  const synth::Surface s = synth::render({.category = "leather"});
  EXPECT_TRUE(s.mask.empty());
  EXPECT_EQ(s.image.pixels, s.clean.pixels);
}

TEST(Synth, UnknownNamesAreErrors) {
  EXPECT_THROW(synth::render({.category = "carpet"}), Error);
  EXPECT_THROW(synth::render({.category = "tile", .defect = "bent"}), Error);
  EXPECT_THROW(synth::render({.category = "tile", .size = 16}), Error);
  EXPECT_THROW(synth::defect_types("wood"), Error);
}

TEST(Synth, WritesALayoutTheDatasetReaderAccepts) {
  testing::TempDir dir;
  const synth::DatasetOptions options{.categories = {"grid", "tile"},
                                      .train = 3,
                                      .test_good = 2,
                                      .test_bad = 1,
                                      .size = 96,
                                      .seed = 5};
  EXPECT_EQ(synth::write_dataset(dir.path(), options), 2 * (3 + 2 + 5));
  EXPECT_EQ(list_categories(dir.path()), (std::vector<std::string>{"grid", "tile"}));
  for (const std::string& name : options.categories) {
    const Category category = read_category(dir.path(), name);
    EXPECT_EQ(category.train.size(), 3u);
    ASSERT_EQ(category.test.size(), 2u + 5u);
    for (const Sample& sample : category.test) {
      EXPECT_EQ(sample.mask.empty(), !sample.anomalous()) << sample.relative_path;
    }
    const Image first = load_image(category.train.front().image);
    EXPECT_EQ(first.width, 96);
    // The file holds exactly the rendered pixels.
    EXPECT_EQ(first.pixels, synth::render({.category = name, .size = 96, .seed = 5}).image.pixels);
  }
  EXPECT_TRUE(synth::dataset_matches(dir.path(), options));
  synth::DatasetOptions other = options;
  other.seed = 6;
  EXPECT_FALSE(synth::dataset_matches(dir.path(), other));
}

TEST(Synth, MoreImagesKeepTheExistingOnes) {
  testing::TempDir a, b;
  synth::write_dataset(
      a.path(), {.categories = {"leather"}, .train = 2, .test_good = 1, .test_bad = 1, .size = 64});
  synth::write_dataset(
      b.path(), {.categories = {"leather"}, .train = 4, .test_good = 3, .test_bad = 2, .size = 64});
  for (const char* file : {"leather/train/good/001.png", "leather/test/cut/000.png",
                           "leather/ground_truth/cut/000_mask.png"}) {
    EXPECT_EQ(testing::read_text(a / file), testing::read_text(b / file)) << file;
  }
}

}  // namespace
}  // namespace pv
