// copy_category: a category's images copied from a store indexed with the same model, checked by
// predicting a few of them again, instead of predicting every image.
#include <algorithm>

#include <gtest/gtest.h>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/indexing.h>
#include <patchvec/synth.h>
#include <patchvec/training.h>

#include "testing.h"

namespace pv {
namespace {

TrainOptions options(double coreset_ratio) {
  TrainOptions options;
  options.model.embedder = {.backbone = "resnet18",
                            .weights = testing::nn_fixtures() / "resnet18.safetensors",
                            .threads = 2};
  options.model.coreset_ratio = coreset_ratio;
  return options;
}

// One tile model, indexed into dir/source.pvs with one image a user added.
class CopyCategory : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    synth::write_dataset(*dir_ / "data",
                         {.categories = {"tile"}, .train = 8, .test_good = 2, .test_bad = 2});
    category_ = new Category(read_category(*dir_ / "data", "tile"));
    model_ = new Model(train_category(*category_, options(0.1)).model);
    const auto source = open_embedded_store(*dir_ / "source.pvs");
    index_category(*model_, *category_, *source);
    const std::filesystem::path image = category_->test.back().image;
    const Prediction p = model_->predict(std::vector{image}).front();
    source->add_image({.path = image.string(),
                       .category = "tile",
                       .anomalous = true,
                       .defect = "scratch",
                       .score = p.score,
                       .verdict = p.verdict,
                       .embedding = p.defect_embedding});
  }
  static void TearDownTestSuite() {
    delete model_;
    delete category_;
    delete dir_;
  }

  // source.pvs's rows with `change` applied, as the dataset images of a new store `name`.
  template <typename Change>
  static std::unique_ptr<VectorStore> forged(const std::string& name, Change change) {
    std::vector<StoredImage> images = open_embedded_store(*dir_ / "source.pvs")->images("tile");
    change(images);
    auto store = open_embedded_store(*dir_ / name);
    // In the source's order (its dataset, then the image added to it).
    std::vector<StoredImage> dataset, added;
    for (const StoredImage& image : images) {
      (image.split == Split::kAdded ? added : dataset).push_back(image);
    }
    store->replace_dataset("tile", dataset);
    for (const StoredImage& image : added) store->add_image(image);
    return store;
  }

  static testing::TempDir* dir_;
  static Category* category_;
  static Model* model_;
};
testing::TempDir* CopyCategory::dir_ = nullptr;
Category* CopyCategory::category_ = nullptr;
Model* CopyCategory::model_ = nullptr;

TEST_F(CopyCategory, CopiesEveryRowAndAddsAddedImagesOnce) {
  const auto source = open_embedded_store(*dir_ / "source.pvs");
  const auto copy = open_embedded_store(*dir_ / "copy.pvs");
  const IndexReport report = copy_category(*model_, *source, *copy);
  const std::size_t images = category_->train.size() + category_->test.size() + 1;  // + added
  EXPECT_EQ(report.images, images);
  EXPECT_EQ(report.verified, 2u);          // the first normal and the first defective image
  copy_category(*model_, *source, *copy);  // again: the added image is not added twice

  // In id order: the second copy's dataset rows are new, its added row is the first copy's.
  const auto by_source = [](std::vector<StoredImage> images) {
    std::stable_sort(images.begin(), images.end(), [](const StoredImage& a, const StoredImage& b) {
      return image_source(a.split) < image_source(b.split);  // kDataset first
    });
    return images;
  };
  const std::vector<StoredImage> from = by_source(source->images("tile"));
  const std::vector<StoredImage> to = by_source(copy->images("tile"));
  ASSERT_EQ(from.size(), images);
  ASSERT_EQ(to.size(), from.size());
  for (std::size_t i = 0; i < from.size(); ++i) {
    EXPECT_EQ(to[i].path, from[i].path) << i;
    EXPECT_EQ(to[i].split, from[i].split) << i;
    EXPECT_EQ(to[i].anomalous, from[i].anomalous) << i;
    EXPECT_EQ(to[i].defect, from[i].defect) << i;
    EXPECT_EQ(to[i].score, from[i].score) << i;
    EXPECT_EQ(to[i].verdict, from[i].verdict) << i;
    EXPECT_EQ(to[i].embedding, from[i].embedding) << i;
  }
  EXPECT_EQ(to.back().split, Split::kAdded);
  EXPECT_EQ(to.back().defect, "scratch");
}

TEST_F(CopyCategory, RefusesImagesAnotherModelMade) {
  // The same backbone with another memory bank: the image embeddings agree, the rest does not.
  const Model other = train_category(*category_, options(0.02)).model;
  const auto source = open_embedded_store(*dir_ / "source.pvs");
  const auto target = open_embedded_store(*dir_ / "refused.pvs");
  try {
    copy_category(other, *source, *target);
    FAIL() << "another model's images were copied";
  } catch (const Error& e) {
    const std::string message = e.what();
    // The defective image's embedding (weighted by its patches' distances to the bank) and its
    // score both tell; the embedding is checked first.
    EXPECT_TRUE(message.find("cosine similarity 0.99") != std::string::npos ||
                message.find("has the score") != std::string::npos)
        << message;
    EXPECT_NE(message.find("it was not indexed with this model (tile)"), std::string::npos)
        << message;
  }
  EXPECT_EQ(target->image_count(), 0u);
}

TEST_F(CopyCategory, RefusesForgedEmbeddingsScoresAndVerdicts) {
  const auto target = open_embedded_store(*dir_ / "forged-target.pvs");
  const auto expect_refused = [&](const VectorStore& from, const std::string& words) {
    try {
      copy_category(*model_, from, *target);
      FAIL() << "copied despite: " << words;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
    EXPECT_EQ(target->image_count(), 0u) << words;
  };
  // The first normal image's embedding turned around.
  expect_refused(*forged("turned.pvs",
                         [](std::vector<StoredImage>& images) {
                           for (float& x : images.front().embedding) x = -x;
                         }),
                 "cosine similarity -1.000000");
  const auto first_defective = [](std::vector<StoredImage>& images) -> StoredImage& {
    for (StoredImage& image : images) {
      if (image.anomalous) return image;
    }
    throw Error("no defective image");
  };
  expect_refused(
      *forged("rescored.pvs",
              [&](std::vector<StoredImage>& images) { *first_defective(images).score *= 1.01f; }),
      "has the score");
  expect_refused(*forged("relabelled.pvs",
                         [&](std::vector<StoredImage>& images) {
                           StoredImage& image = first_defective(images);
                           image.verdict = image.verdict == Verdict::kAnomalous
                                               ? Verdict::kNormal
                                               : Verdict::kAnomalous;
                         }),
                 "has the verdict");
  expect_refused(*forged("shorter.pvs",
                         [](std::vector<StoredImage>& images) {
                           for (StoredImage& image : images) image.embedding.resize(8);
                         }),
                 "has a 8-dimensional embedding");
  expect_refused(*forged("moved.pvs",
                         [](std::vector<StoredImage>& images) {
                           for (StoredImage& image : images) image.path = "gone/" + image.path;
                         }),
                 "none of its images can be read");
  expect_refused(*open_embedded_store(*dir_ / "empty.pvs"), "has no images of tile");
  const auto source = open_embedded_store(*dir_ / "source.pvs");
  try {
    copy_category(*model_, *source, *open_embedded_store(*dir_ / "source.pvs"));
    FAIL() << "a store was copied into itself";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("into itself"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pv
