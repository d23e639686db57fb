#include <gtest/gtest.h>

#include <patchvec/dataset.h>
#include <patchvec/error.h>

#include "testing.h"

namespace pv {
namespace {

// The reader looks at names only, so placeholder bytes stand in for images.
void touch(const std::filesystem::path& path) {
  testing::write_text(path, "x");
}

// root/tile: 3 train images, test good (2), crack (2, with masks), hole (1, with mask).
void make_category(const std::filesystem::path& root, const std::string& name = "tile") {
  const auto c = root / name;
  for (const auto* file : {"002.png", "000.png", "001.png"}) touch(c / "train/good" / file);
  touch(c / "train/good/.hidden.png");
  touch(c / "train/good/readme.txt");
  for (const auto* file : {"000.png", "001.png"}) touch(c / "test/good" / file);
  for (const auto* file : {"000.png", "001.png"}) touch(c / "test/crack" / file);
  touch(c / "test/hole/000.png");
  for (const auto* file : {"000_mask.png", "001_mask.png"}) touch(c / "ground_truth/crack" / file);
  touch(c / "ground_truth/hole/000_mask.png");
}

std::string error_of(const auto& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Dataset, ReadsTheMvtecLayout) {
  testing::TempDir root;
  make_category(root.path());
  const Category category = read_category(root.path(), "tile");
  EXPECT_EQ(category.name, "tile");
  ASSERT_EQ(category.train.size(), 3u);  // hidden and non-image files skipped
  EXPECT_EQ(category.train[0].relative_path, "train/good/000.png");
  EXPECT_EQ(category.train[2].relative_path, "train/good/002.png");
  EXPECT_FALSE(category.train[0].anomalous());

  ASSERT_EQ(category.test.size(), 5u);
  EXPECT_EQ(category.test[0].defect, "good");  // good first
  EXPECT_EQ(category.test[1].defect, "good");
  EXPECT_TRUE(category.test[0].mask.empty());
  EXPECT_EQ(category.test[2].relative_path, "test/crack/000.png");
  EXPECT_TRUE(category.test[2].anomalous());
  EXPECT_EQ(category.test[2].mask, root / "tile/ground_truth/crack/000_mask.png");
  EXPECT_EQ(category.test[4].defect, "hole");
}

TEST(Dataset, ListsCategoriesThatHaveTrainGood) {
  testing::TempDir root;
  make_category(root.path(), "tile");
  make_category(root.path(), "grid");
  std::filesystem::create_directories(root / "not_a_category/stuff");
  EXPECT_EQ(list_categories(root.path()), (std::vector<std::string>{"grid", "tile"}));
}

TEST(Dataset, MissingRoot) {
  EXPECT_NE(error_of([] {
              list_categories("/nonexistent/mvtec");
            }).find("/nonexistent/mvtec does not exist"),
            std::string::npos);
}

TEST(Dataset, UnknownCategoryListsTheAvailableOnes) {
  testing::TempDir root;
  make_category(root.path(), "tile");
  const auto message = error_of([&] { read_category(root.path(), "carpet"); });
  EXPECT_NE(message.find("category carpet not found"), std::string::npos) << message;
  EXPECT_NE(message.find("available: tile"), std::string::npos) << message;
}

TEST(Dataset, EmptyTrainSplit) {
  testing::TempDir root;
  std::filesystem::create_directories(root / "tile/train/good");
  touch(root / "tile/train/good/notes.txt");
  const auto message = error_of([&] { read_category(root.path(), "tile"); });
  EXPECT_NE(message.find("no images in"), std::string::npos) << message;
}

TEST(Dataset, MissingTestFolderOnlyMattersWhenTestIsRead) {
  testing::TempDir root;
  make_category(root.path());
  std::filesystem::remove_all(root / "tile/test");
  std::filesystem::remove_all(root / "tile/ground_truth");
  EXPECT_EQ(read_category(root.path(), "tile", /*with_test=*/false).train.size(), 3u);
  const auto message = error_of([&] { read_category(root.path(), "tile"); });
  EXPECT_NE(message.find("missing folder"), std::string::npos) << message;
  EXPECT_NE(message.find("tile/test"), std::string::npos) << message;
}

TEST(Dataset, EmptyTestSplit) {
  testing::TempDir root;
  make_category(root.path());
  std::filesystem::remove_all(root / "tile/test");
  std::filesystem::remove_all(root / "tile/ground_truth");
  std::filesystem::create_directories(root / "tile/test/good");
  EXPECT_NE(error_of([&] { read_category(root.path(), "tile"); }).find("no images under"),
            std::string::npos);
}

TEST(Dataset, DefectImageWithoutMask) {
  testing::TempDir root;
  make_category(root.path());
  std::filesystem::remove(root / "tile/ground_truth/crack/001_mask.png");
  const auto message = error_of([&] { read_category(root.path(), "tile"); });
  EXPECT_NE(message.find("test/crack/001.png has no mask"), std::string::npos) << message;
}

TEST(Dataset, MaskWithoutImage) {
  testing::TempDir root;
  make_category(root.path());
  touch(root / "tile/ground_truth/crack/007_mask.png");
  const auto message = error_of([&] { read_category(root.path(), "tile"); });
  EXPECT_NE(message.find("007_mask.png has no test image"), std::string::npos) << message;
}

TEST(Dataset, MaskFolderForAMissingDefectType) {
  testing::TempDir root;
  make_category(root.path());
  touch(root / "tile/ground_truth/stain/000_mask.png");
  EXPECT_NE(error_of([&] { read_category(root.path(), "tile"); }).find("has no test image"),
            std::string::npos);
}

TEST(PlainFolder, ListsImagesInNameOrder) {
  testing::TempDir dir;
  for (const auto* file : {"b.jpg", "a.png", "c.JPEG", "notes.md"}) touch(dir / file);
  const auto images = list_images(dir.path());
  ASSERT_EQ(images.size(), 3u);
  EXPECT_EQ(images[0].filename(), "a.png");
  EXPECT_EQ(images[2].filename(), "c.JPEG");
}

TEST(PlainFolder, MissingOrEmpty) {
  testing::TempDir dir;
  EXPECT_NE(error_of([&] { list_images(dir / "nope"); }).find("does not exist"), std::string::npos);
  touch(dir / "notes.md");
  EXPECT_NE(error_of([&] { list_images(dir.path()); }).find("holds no PNG or JPEG"),
            std::string::npos);
}

}  // namespace
}  // namespace pv
