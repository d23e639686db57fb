// Model files: round trips, and every kind of damage gives one clear error naming the file.
#include <fstream>

#include <gtest/gtest.h>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/model.h>

#include "testing.h"

namespace pv {
namespace {

std::filesystem::path fixtures() {
  return testing::fixture_dir() / "patchcore";
}

std::vector<std::filesystem::path> images(bool test) {
  const Category category = read_category(fixtures() / "data", "synthetic");
  std::vector<std::filesystem::path> paths;
  for (const auto& s : test ? category.test : category.train) paths.push_back(s.image);
  return paths;
}

PatchCoreOptions pretrained_options() {
  PatchCoreOptions o;
  o.embedder = {
      .backbone = "resnet18", .weights = fixtures() / "resnet18.safetensors", .threads = 2};
  return o;
}

void expect_same(const std::vector<Prediction>& a, const std::vector<Prediction>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].score, b[i].score);
    EXPECT_EQ(a[i].map.values, b[i].map.values);
    EXPECT_EQ(a[i].anomalous, b[i].anomalous);
  }
}

std::string load_error(const std::filesystem::path& path, const ModelLoadOptions& options = {}) {
  try {
    Model::load(path, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class ModelFile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = std::make_unique<Model>(Model::fit(images(false), "synthetic", pretrained_options()));
    model_->set_thresholds({.image = 3.5f,
                            .pixel = 3.0f,
                            .image_min = 1,
                            .image_max = 6,
                            .pixel_min = 0.5f,
                            .pixel_max = 7,
                            .source = "test"});
  }
  static void TearDownTestSuite() { model_.reset(); }

  std::filesystem::path saved() {
    const auto path = dir_ / "synthetic.pvm";
    model_->save(path);
    return path;
  }

  void damage(const std::filesystem::path& path, std::size_t offset, char value) {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(offset));
    file.put(value);
  }

  static std::unique_ptr<Model> model_;
  testing::TempDir dir_;
};

std::unique_ptr<Model> ModelFile::model_;

TEST_F(ModelFile, RoundTripGivesTheSamePredictionsAndInfo) {
  const Model loaded = Model::load(saved());
  expect_same(model_->predict(images(true)), loaded.predict(images(true)));
  const ModelInfo& info = loaded.info();
  EXPECT_EQ(info.category, "synthetic");
  EXPECT_EQ(info.backbone.backbone, "resnet18");
  EXPECT_EQ(info.bank_size, model_->info().bank_size);
  EXPECT_EQ(info.grid.dim, 384);
  ASSERT_TRUE(info.thresholds.has_value());
  EXPECT_EQ(info.thresholds->image, 3.5f);
  EXPECT_EQ(info.thresholds->source, "test");
  EXPECT_EQ(info.backbone.weights_sha256.size(), 64u);
  EXPECT_TRUE(info.pretrained);
  EXPECT_FLOAT_EQ(loaded.normalize_image(3.5f), 0.5f);
}

TEST_F(ModelFile, RandomBackboneRoundTripRestoresBatchNormStatistics) {
  PatchCoreOptions options;
  options.embedder = {.backbone = "resnet18", .seed = 4, .threads = 2};
  const Model model = Model::fit(images(false), "synthetic", options);
  EXPECT_FALSE(model.info().pretrained);
  model.save(dir_ / "random.pvm");
  const Model loaded = Model::load(dir_ / "random.pvm");
  expect_same(model.predict(images(true)), loaded.predict(images(true)));
}

TEST_F(ModelFile, WritingIsAtomic) {
  const auto path = saved();
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.path()), {}), 1);
  EXPECT_NO_THROW(Model::load(path));
}

TEST_F(ModelFile, MissingFile) {
  const auto message = load_error(dir_ / "nope.pvm");
  EXPECT_NE(message.find("nope.pvm: does not exist"), std::string::npos) << message;
}

TEST_F(ModelFile, NotAModel) {
  testing::write_text(dir_ / "notes.pvm", "these are my notes, not a model at all, sorry");
  EXPECT_NE(load_error(dir_ / "notes.pvm").find("not a PatchVec model"), std::string::npos);
}

TEST_F(ModelFile, Truncated) {
  const auto path = saved();
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  const auto message = load_error(path);
  EXPECT_NE(message.find("synthetic.pvm"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST_F(ModelFile, FlippedByteInTheBank) {
  const auto path = saved();
  const auto size = std::filesystem::file_size(path);
  damage(path, size / 2, '\x55');
  EXPECT_NE(load_error(path).find("checksum mismatch"), std::string::npos);
}

TEST_F(ModelFile, FlippedByteInTheHeader) {
  const auto path = saved();
  damage(path, 40, '#');
  const auto message = load_error(path);
  EXPECT_NE(message.find("corrupt"), std::string::npos) << message;
}

TEST_F(ModelFile, WrongVersion) {
  const auto path = saved();
  damage(path, 8, '\x02');
  const auto message = load_error(path);
  EXPECT_NE(message.find("format version 2, this patchvec reads 1"), std::string::npos) << message;
}

TEST_F(ModelFile, WeightsThatChangedSinceTraining) {
  const auto path = saved();
  const auto weights = dir_ / "w.safetensors";
  std::filesystem::copy_file(fixtures() / "resnet18.safetensors", weights);
  damage(weights, std::filesystem::file_size(weights) - 3, '\x07');
  const auto message = load_error(path, {.weights = weights});
  EXPECT_NE(message.find("w.safetensors has SHA-256"), std::string::npos) << message;
  EXPECT_NE(message.find("but the model was trained with"), std::string::npos) << message;
}

TEST_F(ModelFile, WeightsThatMoved) {
  const auto path = saved();
  const auto message = load_error(path, {.weights = dir_ / "elsewhere.safetensors"});
  EXPECT_NE(message.find("elsewhere.safetensors (the model was trained with it) does not exist"),
            std::string::npos)
      << message;
}

TEST(MemoryBudget, SpilledPatchesGiveTheSameModel) {
  PatchCoreOptions in_memory = pretrained_options();
  PatchCoreOptions spilled = pretrained_options();
  spilled.max_memory_bytes = 1 << 20;  // far below the 7 MB of training patches
  FitReport report_a, report_b;
  const Model a = Model::fit(images(false), "synthetic", in_memory, &report_a);
  const Model b = Model::fit(images(false), "synthetic", spilled, &report_b);
  EXPECT_FALSE(report_a.spilled);
  EXPECT_TRUE(report_b.spilled);
  expect_same(a.predict(images(true)), b.predict(images(true)));
}

}  // namespace
}  // namespace pv
