// anomalib checkpoints (built by tests/fixtures/anomalib_checkpoints.py in anomalib's key layout)
// imported and scored against what anomalib's PatchCore computes with them.
#include <algorithm>
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <patchvec/anomalib.h>
#include <patchvec/error.h>
#include <patchvec/model.h>
#include <patchvec/npy.h>

#include "testing.h"

namespace pv {
namespace {

std::filesystem::path fixtures() {
  return testing::fixture_dir() / "patchcore";
}

// The test images in the order the fixture scored them: good, then blob.
std::vector<std::filesystem::path> test_images() {
  std::vector<std::filesystem::path> images;
  for (const char* kind : {"good", "blob"}) {
    for (const char* name : {"000.png", "001.png", "002.png"}) {
      images.push_back(testing::patchcore_test_image(std::string(kind) + "/" + name));
    }
  }
  return images;
}

nlohmann::json reference_thresholds() {
  std::ifstream in(fixtures() / "anomalib_thresholds.json");
  return nlohmann::json::parse(in);
}

AnomalibImport import(const std::string& name, const AnomalibImportOptions& extra = {}) {
  AnomalibImportOptions options = extra;
  options.category = "synthetic";
  options.threads = 2;
  return import_anomalib(fixtures() / name, options);
}

void expect_anomalib_scores(const Model& model) {
  const FloatArray scores = read_npy(fixtures() / "anomalib_scores.npy");
  const FloatArray maps = read_npy(fixtures() / "anomalib_maps.npy");
  const auto predictions = model.predict(test_images(), "");
  ASSERT_EQ(predictions.size(), scores.values.size());
  const std::size_t pixels = 224 * 224;
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    EXPECT_NEAR(predictions[i].score, scores.values[i], 1e-4 * std::abs(scores.values[i]))
        << "image " << i;
    ASSERT_EQ(predictions[i].map.values.size(), pixels);
    float worst = 0;
    for (std::size_t p = 0; p < pixels; ++p) {
      worst = std::max(worst, std::abs(predictions[i].map.values[p] - maps.values[i * pixels + p]));
    }
    EXPECT_LT(worst, 1e-3f * scores.values[i]) << "map of image " << i;
  }
}

TEST(AnomalibImport, Version1ScoresAsAnomalibWithItsThresholds) {
  const AnomalibImport imported = import("patchcore_v1.ckpt");
  EXPECT_EQ(imported.layout, "anomalib 1.x");
  EXPECT_EQ(imported.weights_prefix, "model.feature_extractor.feature_extractor.");
  EXPECT_TRUE(imported.notes.empty()) << imported.notes.front();
  const ModelInfo& info = imported.model.info();
  EXPECT_EQ(info.backbone.backbone, "resnet18");
  EXPECT_EQ(info.options.embedder.image_size, 256);
  EXPECT_EQ(info.options.embedder.crop_size, 224);
  EXPECT_EQ(info.options.num_neighbors, 9);
  EXPECT_EQ(info.options.upsampling, MapUpsampling::kNearest);
  EXPECT_TRUE(info.pretrained);
  EXPECT_TRUE(info.backbone.weights.empty());

  const nlohmann::json t = reference_thresholds();
  ASSERT_TRUE(info.thresholds.has_value());
  EXPECT_EQ(info.thresholds->image, t["image"].get<float>());
  EXPECT_EQ(info.thresholds->pixel, t["pixel"].get<float>());
  EXPECT_EQ(info.thresholds->image_min, t["image_min"].get<float>());
  EXPECT_EQ(info.thresholds->image_max, t["image_max"].get<float>());
  EXPECT_EQ(info.thresholds->pixel_min, t["pixel_min"].get<float>());
  EXPECT_EQ(info.thresholds->pixel_max, t["pixel_max"].get<float>());
  EXPECT_EQ(info.thresholds->method, ThresholdMethod::kF1);
  EXPECT_NE(info.thresholds->source.find("patchcore_v1.ckpt"), std::string::npos);
  expect_anomalib_scores(imported.model);
}

TEST(AnomalibImport, Version2ScoresAsAnomalibWithItsThresholds) {
  const AnomalibImport imported = import("patchcore_v2.ckpt");
  EXPECT_EQ(imported.layout, "anomalib 2.x");
  EXPECT_TRUE(imported.notes.empty()) << imported.notes.front();
  EXPECT_EQ(imported.model.info().options.embedder.crop_size, 224);
  ASSERT_TRUE(imported.model.info().thresholds.has_value());
  EXPECT_EQ(imported.model.info().thresholds->image, reference_thresholds()["image"].get<float>());
  expect_anomalib_scores(imported.model);
}

TEST(AnomalibImport, AnAssumedDefaultIsSaidAndCanBeOverridden) {
  const AnomalibImport assumed = import("patchcore_v2_default.ckpt");
  ASSERT_EQ(assumed.notes.size(), 1u);
  EXPECT_NE(assumed.notes[0].find("anomalib 2.1+'s default"), std::string::npos);
  EXPECT_EQ(assumed.model.info().options.embedder.image_size, 256);
  EXPECT_EQ(assumed.model.info().options.embedder.crop_size, 0);
  // The model was trained with anomalib 2.0's crop, say: the user says so.
  const AnomalibImport told =
      import("patchcore_v2_default.ckpt", {.image_size = 256, .crop_size = 224});
  EXPECT_TRUE(told.notes.empty());
  expect_anomalib_scores(told.model);
}

TEST(AnomalibImport, ACyclicPickleIsReadOnce) {
  // 50^10 paths through one shared list, and an object that is its own _modules.
  const AnomalibImport imported = import("patchcore_cyclic.ckpt");
  ASSERT_EQ(imported.notes.size(), 1u);
  EXPECT_NE(imported.notes[0].find("default assumed"), std::string::npos) << imported.notes[0];
}

TEST(AnomalibImport, TheModelFileNeedsNoOtherFile) {
  testing::TempDir dir;
  const auto checkpoint = dir / "model.ckpt";
  std::filesystem::copy_file(fixtures() / "patchcore_v1.ckpt", checkpoint);
  const auto model_file = dir / "synthetic.pvm";
  {
    const AnomalibImport imported = import_anomalib(checkpoint, {.category = "synthetic"});
    imported.model.save(model_file);
  }
  std::filesystem::remove(checkpoint);
  const Model loaded = Model::load(model_file, {.threads = 2});
  EXPECT_TRUE(loaded.info().backbone.weights.empty());
  EXPECT_TRUE(loaded.info().thresholds.has_value());
  expect_anomalib_scores(loaded);
  // Saved again (patchvec update rewrites models), it still carries its weights.
  loaded.save(dir / "again.pvm");
  expect_anomalib_scores(Model::load(dir / "again.pvm", {.threads = 2}));

  try {
    Model::load(model_file, {.weights = fixtures() / "resnet18.safetensors"});
    ADD_FAILURE() << "--weights accepted for a model that carries its weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("carries its backbone's weights"), std::string::npos)
        << e.what();
  }
}

TEST(AnomalibImport, WhatIsNotAnAnomalibPatchcoreCheckpoint) {
  const auto refusal = [](const std::filesystem::path& path, const std::string& category) {
    try {
      import_anomalib(path, {.category = category});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string safetensors = refusal(fixtures() / "resnet18.safetensors", "synthetic");
  EXPECT_NE(safetensors.find("resnet18.safetensors"), std::string::npos) << safetensors;
  const std::string lightning =
      refusal(testing::nn_fixtures() / "checkpoints" / "resnet18_lightning.ckpt", "synthetic");
  EXPECT_NE(lightning.find("no key model.memory_bank"), std::string::npos) << lightning;
  const std::string hostile =
      refusal(testing::nn_fixtures() / "checkpoints" / "os_system.pth", "synthetic");
  EXPECT_NE(hostile.find("posix.system"), std::string::npos) << hostile;
  const std::string category = refusal(fixtures() / "patchcore_v1.ckpt", "../up");
  EXPECT_NE(category.find("category"), std::string::npos) << category;
}

}  // namespace
}  // namespace pv
