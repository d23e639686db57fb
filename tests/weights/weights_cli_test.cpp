// --weights and `patchvec weights` as a user runs them, against a server on 127.0.0.1.
#include <chrono>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run.h"
#include "testing.h"
#include "util/sha256.h"
#include "weights/local_server.h"

namespace pv {
namespace {

std::filesystem::path checkpoints() {
  return testing::nn_fixtures() / "checkpoints";
}

// Three of the fixture images, as a plain folder.
std::filesystem::path image_folder(const testing::TempDir& dir) {
  const auto folder = dir / "images";
  std::filesystem::create_directories(folder);
  int copied = 0;
  for (const auto& entry : std::filesystem::directory_iterator(testing::nn_fixtures() / "images")) {
    if (entry.path().extension() != ".png" || copied == 3) continue;
    std::filesystem::copy_file(entry.path(), folder / entry.path().filename());
    ++copied;
  }
  return folder;
}

class WeightsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.add("resnet18.pth", testing::read_text(checkpoints() / "resnet18.pth"));
  }
  std::string embed(const std::string& weights, const std::string& out) {
    const CommandResult run = patchvec("embed --data " + image_folder_.string() +
                                       " --backbone resnet18 --image-size 64 "
                                       "--crop-size 0 --threads 2 --weights '" +
                                       weights + "' --out " + (dir_ / out).string());
    EXPECT_EQ(run.exit_code, 0) << run.output;
    return testing::read_text(dir_ / out);
  }

  testing::TempDir dir_;
  std::filesystem::path image_folder_ = image_folder(dir_);
  testing::LocalServer server_;
  testing::ScopedEnv cache_{"XDG_CACHE_HOME", (dir_ / "cache").string()};
  testing::ScopedEnv online_{"PATCHVEC_OFFLINE", std::nullopt};
  testing::ScopedEnv no_mirror_{"PATCHVEC_WEIGHTS_MIRROR", std::nullopt};
};

TEST_F(WeightsCli, EmbedFromAUrlTwiceGivesIdenticalOutputTheSecondTimeWithoutTheServer) {
  const std::string url = server_.url("files/resnet18.pth");
  const std::string first = embed(url, "first.npy");
  EXPECT_EQ(server_.requests(), 1);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "cache/patchvec/weights/resnet18.pth"));
  server_.stop();
  const std::string second = embed(url, "second.npy");
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first, second);
  // The same tensors as the file itself and as its safetensors twin.
  EXPECT_EQ(first, embed((checkpoints() / "resnet18.pth").string(), "file.npy"));
  EXPECT_EQ(first, embed((testing::nn_fixtures() / "resnet18.safetensors").string(), "st.npy"));
}

TEST_F(WeightsCli, ImagenetOfflineFailsFastWithOneMessage) {
  const testing::ScopedEnv mirror("PATCHVEC_WEIGHTS_MIRROR",
                                  "http://127.0.0.1:" + std::to_string(testing::closed_port()));
  const auto start = std::chrono::steady_clock::now();
  const CommandResult run =
      patchvec("embed --data " + image_folder_.string() +
               " --backbone resnet18 --weights imagenet --out " + (dir_ / "x.npy").string());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("patchvec: error: weights 'imagenet' for resnet18: downloading"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("patchvec weights fetch imagenet --backbone resnet18"),
            std::string::npos)
      << run.output;
  EXPECT_EQ(run.output.find("warning"), std::string::npos) << run.output;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "x.npy"));
}

TEST_F(WeightsCli, FetchListVerify) {
  const std::string url = server_.url("files/resnet18.pth");
  const CommandResult fetch = patchvec("weights fetch --json " + url, false);
  ASSERT_EQ(fetch.exit_code, 0) << fetch.output;
  const auto fetched = nlohmann::json::parse(fetch.output);
  EXPECT_EQ(fetched["backbone"], "resnet18");
  EXPECT_EQ(fetched["format"], "PyTorch zip");
  EXPECT_EQ(fetched["sha256"], sha256_file_hex(checkpoints() / "resnet18.pth"));
  EXPECT_EQ(fetched["file"], (dir_ / "cache/patchvec/weights/resnet18.pth").string());

  const CommandResult list = patchvec("weights list --json", false);
  ASSERT_EQ(list.exit_code, 0) << list.output;
  const auto listed = nlohmann::json::parse(list.output);
  ASSERT_EQ(listed["files"].size(), 1u);
  EXPECT_EQ(listed["files"][0]["url"], url);
  EXPECT_EQ(listed["files"][0]["backbone"], "resnet18");
  EXPECT_EQ(listed["known"].size(), 3u);
  EXPECT_TRUE(listed["known"][0]["cached"].is_null());
  const CommandResult table = patchvec("weights list");
  EXPECT_NE(table.output.find("backbone: resnet18"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("source: " + url), std::string::npos) << table.output;

  // A Lightning checkpoint: which backbone, under which prefix.
  const CommandResult lightning =
      patchvec("weights verify " + (checkpoints() / "resnet18_lightning.ckpt").string());
  EXPECT_EQ(lightning.exit_code, 0) << lightning.output;
  EXPECT_NE(lightning.output.find("fits resnet18 (keys under 'model.backbone.')"),
            std::string::npos)
      << lightning.output;

  const CommandResult wrong = patchvec("weights verify --backbone wide_resnet50_2 " +
                                       (checkpoints() / "resnet18.pth").string());
  EXPECT_EQ(wrong.exit_code, 1) << wrong.output;
  EXPECT_NE(wrong.output.find("does not fit backbone wide_resnet50_2"), std::string::npos)
      << wrong.output;
  EXPECT_NE(wrong.output.find("The file fits backbone resnet18."), std::string::npos)
      << wrong.output;

  const CommandResult hostile =
      patchvec("weights verify " + (checkpoints() / "os_system.pth").string());
  EXPECT_EQ(hostile.exit_code, 1) << hostile.output;
  EXPECT_NE(hostile.output.find("os_system.pth"), std::string::npos) << hostile.output;

  // verify never downloads, even where it could.
  const testing::ScopedEnv mirror("PATCHVEC_WEIGHTS_MIRROR", server_.url("files"));
  const int before = server_.requests();
  const CommandResult absent = patchvec("weights verify imagenet --backbone resnet50");
  EXPECT_EQ(absent.exit_code, 1) << absent.output;
  EXPECT_NE(absent.output.find("are not in the cache"), std::string::npos) << absent.output;
  EXPECT_EQ(server_.requests(), before);
}

}  // namespace
}  // namespace pv
