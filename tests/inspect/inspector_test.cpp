// The Inspector: models by category and one store, what `patchvec search` and the service use.
#include <gtest/gtest.h>
#include <unistd.h>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/indexing.h>
#include <patchvec/inspector.h>
#include <patchvec/json.h>
#include <patchvec/synth.h>
#include <patchvec/training.h>

#include "testing.h"

namespace pv {
namespace {

// Two categories trained on the fixture weights, saved in dir/models and indexed in its store.
// Trained once for the whole build (every test runs in a process of its own): the first process
// fills <fixtures>/inspector and renames it into place; each test works on a copy of its models.
class InspectorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::filesystem::path cache = testing::fixture_dir() / "inspector";
    if (!std::filesystem::exists(cache / "models" / "store.pvs")) {
      const std::filesystem::path building =
          testing::fixture_dir() / ("inspector." + std::to_string(::getpid()));
      std::filesystem::remove_all(building);
      synth::write_dataset(
          building / "data",
          {.categories = {"tile", "grid"}, .train = 8, .test_good = 2, .test_bad = 2});
      std::filesystem::create_directories(building / "models");
      const auto store = open_embedded_store(building / "models" / "store.pvs");
      for (const std::string name : {"tile", "grid"}) {
        // Paths as they will be once in place: the store keeps them.
        const Category category = read_category(building / "data", name);
        TrainOptions options;
        options.model.embedder = {.backbone = "resnet18",
                                  .weights = testing::nn_fixtures() / "resnet18.safetensors",
                                  .threads = 2};
        const TrainResult result = train_category(category, options);
        result.model.save(building / "models" / (name + ".pvm"));
      }
      std::error_code error;  // another process may have put its copy in place first
      std::filesystem::rename(building, cache, error);
      std::filesystem::remove_all(building, error);
      if (!std::filesystem::exists(cache / "models" / "store.pvs")) {
        // The store is indexed in place, so that its paths name the cache's images.
        const std::string mine = "store.pvs." + std::to_string(::getpid());
        const auto indexed = open_embedded_store(cache / "models" / mine);
        for (const std::string name : {"tile", "grid"}) {
          index_category(Model::load(cache / "models" / (name + ".pvm"), {.threads = 2}),
                         read_category(cache / "data", name), *indexed);
        }
        std::filesystem::rename(cache / "models" / mine, cache / "models" / "store.pvs");
      }
    }
    dir_ = new testing::TempDir();
    std::filesystem::create_directories(*dir_ / "models");
    for (const auto& entry : std::filesystem::directory_iterator(cache / "models")) {
      if (entry.path().extension() == ".pvm" || entry.path().filename() == "store.pvs") {
        std::filesystem::copy_file(entry.path(), *dir_ / "models" / entry.path().filename());
      }
    }
    data_ = new std::filesystem::path(cache / "data");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
    delete data_;
    data_ = nullptr;
  }

  static Inspector open() {
    return Inspector(load_models(*dir_ / "models", {.threads = 2}),
                     open_embedded_store(*dir_ / "models" / "store.pvs"));
  }

  static testing::TempDir* dir_;
  static std::filesystem::path* data_;  // the cache's images, which the stores' rows name
};
testing::TempDir* InspectorTest::dir_ = nullptr;
std::filesystem::path* InspectorTest::data_ = nullptr;

TEST_F(InspectorTest, LoadsEveryCategoryAndRefusesUnknownOnes) {
  const Inspector inspector = open();
  ASSERT_EQ(inspector.models().size(), 2u);
  EXPECT_EQ(inspector.model("grid")->info().category, "grid");
  EXPECT_EQ(inspector.model("tile")->info().category, "tile");
  try {
    inspector.model("wood");
    FAIL() << "an unknown category was accepted";
  } catch (const NotFoundError& e) {
    EXPECT_EQ(std::string(e.what()), "unknown category 'wood'");
  }
}

// The Inspector's answers are the ones pv::inspect gives with the same model and store, for files
// (in their order) and for decoded images.
TEST_F(InspectorTest, AnswersAsInspectDoes) {
  const Inspector inspector = open();
  const Category category = read_category(*data_, "tile");
  std::vector<std::filesystem::path> images;
  for (const Sample& s : category.test) images.push_back(s.image);
  const InspectOptions options{.k = 3, .report = false};
  const std::vector<Inspected> answers = inspector.inspect("tile", images, options);
  ASSERT_EQ(answers.size(), images.size());
  const Model& model = *inspector.model("tile");
  for (std::size_t i = 0; i < images.size(); ++i) {
    const Prediction p = model.predict(load_image(images[i]));
    const Inspection expected = inspect(model, inspector.store(), p, images[i].string(), options);
    EXPECT_EQ(json::inspection(answers[i].inspection), json::inspection(expected)) << i;
    EXPECT_EQ(answers[i].prediction.score, p.score) << i;
    const Inspected one =
        inspector.inspect("tile", load_image(images[i]), images[i].string(), options);
    EXPECT_EQ(json::inspection(one.inspection), json::inspection(expected)) << i;
  }
  EXPECT_THROW(inspector.inspect("wood", images, options), NotFoundError);
}

// An image from outside, as encoded bytes: the same answer as its file, checked against the
// model's limits before its turn is taken, the turn held through the prediction; a reported
// image's bytes are kept by their SHA-256, and a report the store refuses for now waits in the
// spool.
TEST_F(InspectorTest, InspectsEncodedBytesAsItsFile) {
  testing::TempDir kept;
  const Inspector inspector(load_models(*dir_ / "models", {.threads = 2}),
                            open_embedded_store(kept / "store.pvs"),
                            {.batching = BatcherOptions{.max_batch = 2},
                             .report_images_dir = kept / "images",
                             .report_spool_dir = kept / "spool"});
  index_category(*inspector.model("tile"), read_category(*data_, "tile"), inspector.store());
  const Category category = read_category(*data_, "tile");
  int turns = 0;
  const TurnWaiter wait = [&] {
    ++turns;
    return std::shared_ptr<void>();
  };
  for (const Sample& s : category.test) {
    const std::string bytes = testing::read_text(s.image);
    const Inspected r = inspector.inspect(
        "tile",
        {.bytes = std::as_bytes(std::span(bytes.data(), bytes.size())), .name = "upload.png"},
        {.k = 3}, wait);
    const Inspected file =
        inspector.inspect("tile", std::span(&s.image, 1), {.k = 3, .report = false}).front();
    EXPECT_EQ(r.prediction.score, file.prediction.score);
    EXPECT_EQ(r.inspection.verdict, file.inspection.verdict);
    EXPECT_EQ(r.image.width, load_image(s.image).width);
    EXPECT_EQ(r.model, inspector.model("tile"));
    if (r.inspection.verdict == Verdict::kAnomalous) {
      ASSERT_TRUE(r.inspection.report_id.has_value());
      const auto report = inspector.store().report(*r.inspection.report_id);
      EXPECT_EQ(report->path, "upload.png");
      EXPECT_EQ(testing::read_text(report->image), bytes);  // kept, by its SHA-256
      EXPECT_EQ(std::filesystem::path(report->image).parent_path(), kept / "images");
    }
  }
  EXPECT_EQ(turns, static_cast<int>(category.test.size()));
  EXPECT_GT(inspector.batcher_stats().images, 0);
  EXPECT_EQ(inspector.reports_pending(), 0u);
  // Bytes that are no image: refused before a turn is taken.
  const std::string text = "no image";
  EXPECT_THROW(
      inspector.inspect(
          "tile", {.bytes = std::as_bytes(std::span(text.data(), text.size())), .name = "text.png"},
          {}, wait),
      ImageError);
  EXPECT_EQ(turns, static_cast<int>(category.test.size()));
}

// serve() swaps a category's model for the calls that begin after it; whoever holds the previous
// one keeps using it. A model must be of the category it is served for.
TEST_F(InspectorTest, ServeSwapsAModelWhileHoldersKeepTheirs) {
  Inspector inspector = open();
  const std::shared_ptr<const Model> before = inspector.model("tile");
  const float threshold = before->info().thresholds->image;
  Model changed = Model::load(*dir_ / "models" / "tile.pvm", {.threads = 2});
  Thresholds thresholds = *changed.info().thresholds;
  thresholds.image = threshold * 2;
  changed.set_thresholds(thresholds);
  inspector.serve({.model = std::make_shared<const Model>(std::move(changed)),
                   .sha256 = "abc",
                   .published = PublishedModel{.category = "tile", .revision = 7}});
  EXPECT_EQ(inspector.model("tile")->info().thresholds->image, threshold * 2);
  EXPECT_EQ(inspector.served("tile").published->revision, 7);
  EXPECT_EQ(inspector.served("tile").sha256, "abc");
  EXPECT_EQ(before->info().thresholds->image, threshold);  // still whole for its holder
  EXPECT_EQ(inspector.models().size(), 2u);
  EXPECT_FALSE(inspector.served("grid").published.has_value());
  EXPECT_THROW(inspector.serve({}), Error);
  std::map<std::string, ServedModel> mislabelled;
  mislabelled.emplace("wood", ServedModel{.model = before});
  EXPECT_THROW(Inspector(std::move(mislabelled), open_embedded_store(*dir_ / "other.pvs")), Error);
}

// A decision goes to the model of the report's category; an unknown report is NotFound, and a
// report of a category without a loaded model a conflict, before anything is stored.
TEST_F(InspectorTest, ResolvesWithTheReportsCategory) {
  const Inspector inspector = open();
  VectorStore& store = inspector.store();
  const Category grid = read_category(*data_, "grid");
  const std::filesystem::path image = grid.test.back().image;
  const std::int64_t id = store.add_report({.path = image.string(), .category = "grid"});
  const std::int64_t orphan = store.add_report({.path = image.string(), .category = "wood"});
  const std::size_t before = store.image_count("grid");
  EXPECT_THROW(inspector.resolve(999999, {.resolution = Resolution::kFalseAlarm}), NotFoundError);
  EXPECT_THROW(inspector.resolve(orphan, {.resolution = Resolution::kFalseAlarm}), ConflictError);
  EXPECT_THROW(inspector.resolve(id, {.resolution = Resolution::kDefect}), Error);  // no type
  const ResolvedReport resolved =
      inspector.resolve(id, {.resolution = Resolution::kFalseAlarm, .by = "test"});
  EXPECT_EQ(resolved.report.status, ReportStatus::kResolved);
  EXPECT_EQ(store.image_count("grid"), before + 1);
  const auto added = store.image(resolved.image_id);
  ASSERT_TRUE(added.has_value());
  EXPECT_EQ(added->category, "grid");
  EXPECT_FALSE(added->anomalous);
  EXPECT_THROW(inspector.resolve(id, {.resolution = Resolution::kFalseAlarm}), ConflictError);
}

TEST_F(InspectorTest, TwoModelsOfOneCategoryAreRefused) {
  testing::TempDir other;
  std::filesystem::copy_file(*dir_ / "models" / "tile.pvm", other / "a.pvm");
  std::filesystem::copy_file(*dir_ / "models" / "tile.pvm", other / "b.pvm");
  try {
    load_models(other.path());
    FAIL() << "two tile models were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "two models for category tile in " + other.path().string() +
                                         " (b.pvm is the second)");
  }
}

TEST(LoadModels, FolderErrorsNameTheFolder) {
  testing::TempDir dir;
  const auto error_of = [](const std::filesystem::path& folder) {
    try {
      load_models(folder);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of(dir / "absent"),
            "models folder " + (dir / "absent").string() + " does not exist");
  std::filesystem::create_directories(dir / "empty");
  EXPECT_EQ(error_of(dir / "empty"), "no .pvm model in " + (dir / "empty").string());
  std::filesystem::create_directories(dir / "broken");
  testing::write_text(dir / "broken" / "tile.pvm", "not a model");
  EXPECT_NE(error_of(dir / "broken").find("not a PatchVec model"), std::string::npos);
}

}  // namespace
}  // namespace pv
