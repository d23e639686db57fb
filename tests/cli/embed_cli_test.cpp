// patchvec embed as a user runs it: exit codes, messages, and the .npy it writes.
#include <array>
#include <cstdio>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <patchvec/npy.h>

#include "cli/run.h"
#include "testing.h"

namespace pv {
namespace {

// A small MVTec-layout category made of the fixture images.
void make_category(const std::filesystem::path& root) {
  const auto train = root / "tile/train/good";
  std::filesystem::create_directories(train);
  int index = 0;
  for (const auto& entry : std::filesystem::directory_iterator(testing::nn_fixtures() / "images")) {
    if (entry.path().extension() != ".png") continue;
    char name[16];
    std::snprintf(name, sizeof name, "%03d.png", index++);
    std::filesystem::copy_file(entry.path(), train / name);
  }
}

std::string weights(const std::string& backbone) {
  return (testing::nn_fixtures() / (backbone + ".safetensors")).string();
}

TEST(EmbedCli, WritesNhwcNpyForTheTrainSplit) {
  testing::TempDir dir;
  make_category(dir / "data");
  const CommandResult run = patchvec("embed --data " + (dir / "data").string() +
                                     " --category tile --backbone resnet18 --weights " +
                                     weights("resnet18") + " --out " + (dir / "tile.npy").string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const FloatArray array = read_npy(dir / "tile.npy");
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{7, 28, 28, 384}));
  EXPECT_NE(run.output.find("embedded 7 images"), std::string::npos) << run.output;
}

TEST(EmbedCli, JsonSummaryListsTheImageOrder) {
  testing::TempDir dir;
  make_category(dir / "data");
  const CommandResult run = patchvec(
      "--quiet embed --json --data " + (dir / "data").string() +
      " --category tile --backbone resnet18 --weights " + weights("resnet18") +
      " --crop-size 0 --image-size 128 --out " + (dir / "t.npy").string() + " 2>/dev/null");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("\"train/good/000.png\""), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("\"pretrained\": true"), std::string::npos) << run.output;
  EXPECT_EQ(read_npy(dir / "t.npy").shape, (std::vector<std::int64_t>{7, 16, 16, 384}));
}

TEST(EmbedCli, PlainFolderWithoutCategory) {
  testing::TempDir dir;
  make_category(dir / "data");
  const CommandResult run = patchvec("embed --data " + (dir / "data/tile/train/good").string() +
                                     " --backbone resnet18 --weights " + weights("resnet18") +
                                     " --out " + (dir / "f.npy").string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(read_npy(dir / "f.npy").shape[0], 7);
}

TEST(EmbedCli, RandomInitWarnsOnceAndCalibrates) {
  testing::TempDir dir;
  make_category(dir / "data");
  const CommandResult run =
      patchvec("embed --data " + (dir / "data").string() +
               " --category tile --backbone resnet18 --out " + (dir / "r.npy").string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::string warning = "patchvec: warning: no pretrained weights: resnet18 is randomly";
  const auto first = run.output.find(warning);
  EXPECT_NE(first, std::string::npos) << run.output;
  EXPECT_EQ(run.output.find(warning, first + 1), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("--weights imagenet"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("BatchNorm calibrat"), std::string::npos) << run.output;
}

TEST(EmbedCli, CorruptImageFailsClearlyAndWritesNothing) {
  testing::TempDir dir;
  make_category(dir / "data");
  testing::write_text(dir / "data/tile/train/good/004.png", "\x89PNG\r\n\x1a\n truncated");
  const CommandResult run = patchvec("embed --data " + (dir / "data").string() +
                                     " --category tile --backbone resnet18 --weights " +
                                     weights("resnet18") + " --out " + (dir / "x.npy").string());
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("patchvec: error: image"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("004.png"), std::string::npos) << run.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "x.npy"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);  // no temp file
}

TEST(EmbedCli, MissingCategoryNamesTheAvailableOnes) {
  testing::TempDir dir;
  make_category(dir / "data");
  const CommandResult run = patchvec("embed --data " + (dir / "data").string() +
                                     " --category carpet --out " + (dir / "x.npy").string());
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("category carpet not found"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("available: tile"), std::string::npos) << run.output;
}

TEST(EmbedCli, WrongWeightsShapeNamesTheKey) {
  testing::TempDir dir;
  make_category(dir / "data");
  const CommandResult run = patchvec("embed --data " + (dir / "data").string() +
                                     " --category tile --backbone wide_resnet50_2 --weights " +
                                     weights("resnet18") + " --out " + (dir / "x.npy").string());
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("missing key layer1.0.bn3.bias"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("fits backbone resnet18: pass --backbone resnet18"), std::string::npos)
      << run.output;
}

TEST(EmbedCli, UsageErrorsExitWith2) {
  EXPECT_EQ(patchvec("embed --category tile").exit_code, 2);
  EXPECT_EQ(patchvec("frobnicate").exit_code, 2);
  const CommandResult help = patchvec("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("embed"), std::string::npos);
}

}  // namespace
}  // namespace pv
