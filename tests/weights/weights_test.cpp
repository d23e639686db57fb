// --weights values, downloads and the cache, against a real HTTP server on 127.0.0.1.
#include <algorithm>
#include <chrono>
#include <functional>

#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/weights.h>

#include "testing.h"
#include "util/sha256.h"
#include "weights/local_server.h"

namespace pv {
namespace {

std::filesystem::path checkpoint() {
  return testing::nn_fixtures() / "checkpoints" / "resnet18.pth";
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Names in the cache folder, temporary files included.
std::vector<std::string> cache_listing(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& item : std::filesystem::directory_iterator(dir, error)) {
    names.push_back(item.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class Weights : public ::testing::Test {
 protected:
  void SetUp() override {
    bytes_ = testing::read_text(checkpoint());
    sha256_ = sha256_file_hex(checkpoint());
    server_.add("resnet18.pth", bytes_);
  }
  FetchOptions options() const { return {.cache_dir = dir_ / "cache", .progress = false}; }
  std::string resolve_error(const std::string& value, const std::string& backbone = "resnet18") {
    return error_of([&] { resolve_weights(value, backbone, options()); });
  }

  testing::TempDir dir_;
  testing::LocalServer server_;
  std::string bytes_;
  std::string sha256_;
  testing::ScopedEnv online_{"PATCHVEC_OFFLINE", std::nullopt};
  testing::ScopedEnv no_mirror_{"PATCHVEC_WEIGHTS_MIRROR", std::nullopt};
};

TEST_F(Weights, ParsesWhatUsersWrite) {
  EXPECT_EQ(parse_weights_spec("", "resnet18").kind, WeightsSpec::Kind::kRandom);
  EXPECT_EQ(parse_weights_spec("random", "resnet18").kind, WeightsSpec::Kind::kRandom);
  EXPECT_EQ(parse_weights_spec("w.safetensors", "resnet18").kind, WeightsSpec::Kind::kFile);

  const WeightsSpec name = parse_weights_spec("imagenet", "wide_resnet50_2");
  EXPECT_EQ(name.kind, WeightsSpec::Kind::kName);
  EXPECT_EQ(name.url, "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth");
  EXPECT_EQ(name.expected_sha256, "95faca4d");
  EXPECT_EQ(parse_weights_spec("IMAGENET1K_V1", "resnet18").url,
            "https://download.pytorch.org/models/resnet18-f37072fd.pth");

  const WeightsSpec fragment =
      parse_weights_spec("https://example.com/a/b.pth#sha256=" + std::string(64, 'A'), "resnet18");
  EXPECT_EQ(fragment.kind, WeightsSpec::Kind::kUrl);
  EXPECT_EQ(fragment.url, "https://example.com/a/b.pth");
  EXPECT_EQ(fragment.expected_sha256, std::string(64, 'a'));
  EXPECT_EQ(parse_weights_spec("http://h/x/model-1a2b3c4d.pth", "resnet18").expected_sha256,
            "1a2b3c4d");
  EXPECT_EQ(parse_weights_spec("http://h/x/model.pth", "resnet18").expected_sha256, "");

  EXPECT_NE(error_of([] {
              parse_weights_spec("http://h/b.pth#md5=00", "resnet18");
            }).find("only URL fragment understood is #sha256"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_weights_spec("http://h/b.pth#sha256=abc", "resnet18");
            }).find("64 hex digits"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_weights_spec("http://h/", "resnet18"); }).find("names no file"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_weights_spec("imagenet", "vgg16");
            }).find("no ImageNet weights are known for backbone 'vgg16'"),
            std::string::npos);
}

TEST_F(Weights, DownloadedOnceThenReusedWithTheServerGone) {
  const std::string url = server_.url("files/resnet18.pth#sha256=" + sha256_);
  const auto file = resolve_weights(url, "resnet18", options());
  EXPECT_EQ(file, dir_ / "cache" / "resnet18.pth");
  EXPECT_EQ(sha256_file_hex(file), sha256_);
  EXPECT_EQ(server_.requests(), 1);
  EXPECT_EQ(cache_listing(dir_ / "cache"),
            (std::vector<std::string>{"resnet18.pth", "resnet18.pth.source.json"}));

  const auto cached = cached_weights(options());
  ASSERT_EQ(cached.size(), 1u);
  EXPECT_EQ(cached[0].url, server_.url("files/resnet18.pth"));
  EXPECT_EQ(cached[0].sha256, sha256_);
  EXPECT_EQ(cached[0].bytes, static_cast<std::int64_t>(bytes_.size()));
  EXPECT_FALSE(cached[0].fetched.empty());
  EXPECT_EQ(find_cached_weights(sha256_, options()), file);
  EXPECT_FALSE(find_cached_weights(std::string(64, '0'), options()));

  server_.stop();
  EXPECT_EQ(resolve_weights(url, "resnet18", options()), file);
  // Without the fragment too: the file was recorded as coming from this URL.
  EXPECT_EQ(resolve_weights(server_.url("files/resnet18.pth"), "resnet18", options()), file);
  const testing::ScopedEnv offline("PATCHVEC_OFFLINE", "1");
  EXPECT_EQ(resolve_weights(url, "resnet18", options()), file);
}

TEST_F(Weights, TorchvisionNamesAreVerifiedByTheirHashPrefix) {
  const std::string name = "resnet18-" + sha256_.substr(0, 8) + ".pth";
  server_.add(name, bytes_);
  const auto file = resolve_weights(server_.url("files/" + name), "resnet18", options());
  EXPECT_EQ(file.filename(), name);

  // The same name with the wrong content: refused, and nothing is left behind.
  server_.add("resnet18-00000000.pth", bytes_);
  const std::string message = resolve_error(server_.url("files/resnet18-00000000.pth"));
  EXPECT_NE(message.find("its SHA-256 is " + sha256_ + ", expected one starting with 00000000"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("nothing was kept in the cache"), std::string::npos) << message;
  EXPECT_EQ(cache_listing(dir_ / "cache"), (std::vector<std::string>{name, name + ".source.json"}));
}

TEST_F(Weights, ShaMismatchLeavesNothingInTheCache) {
  const std::string message =
      resolve_error(server_.url("files/resnet18.pth#sha256=" + std::string(64, 'f')));
  EXPECT_NE(message.find("its SHA-256 is " + sha256_ + ", expected " + std::string(64, 'f')),
            std::string::npos)
      << message;
  EXPECT_EQ(message.find("torchvision's convention"), std::string::npos) << message;
  EXPECT_TRUE(cache_listing(dir_ / "cache").empty());
}

TEST_F(Weights, TruncatedTransfer) {
  const std::string message = resolve_error(server_.url("truncated/resnet18.pth"));
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  EXPECT_NE(message.find("nothing was kept in the cache"), std::string::npos) << message;
  EXPECT_TRUE(cache_listing(dir_ / "cache").empty());
}

TEST_F(Weights, NotFound) {
  const std::string message = resolve_error(server_.url("files/resnet50.pth"));
  EXPECT_NE(message.find("the server answered HTTP 404"), std::string::npos) << message;
  EXPECT_NE(message.find("To get it onto this machine"), std::string::npos) << message;
  EXPECT_TRUE(cache_listing(dir_ / "cache").empty());
}

TEST_F(Weights, ConnectionRefused) {
  const int port = testing::closed_port();
  const std::string message =
      resolve_error("http://127.0.0.1:" + std::to_string(port) + "/resnet18.pth");
  EXPECT_NE(message.find("cannot connect to 127.0.0.1"), std::string::npos) << message;
  EXPECT_TRUE(cache_listing(dir_ / "cache").empty());
}

TEST_F(Weights, LargerThanAllowed) {
  FetchOptions small = options();
  small.max_bytes = 1 << 20;
  const std::string message =
      error_of([&] { resolve_weights(server_.url("files/resnet18.pth"), "resnet18", small); });
  EXPECT_NE(message.find("more than the 1048576"), std::string::npos) << message;
  EXPECT_TRUE(cache_listing(dir_ / "cache").empty());
}

TEST_F(Weights, NamedWeightsOfflineFailFastSayingWhatToDo) {
  // A mirror nobody answers on stands in for download.pytorch.org without a network.
  const testing::ScopedEnv mirror("PATCHVEC_WEIGHTS_MIRROR",
                                  "http://127.0.0.1:" + std::to_string(testing::closed_port()));
  const auto start = std::chrono::steady_clock::now();
  const std::string message = resolve_error("imagenet", "wide_resnet50_2");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_NE(message.find("weights 'imagenet' for wide_resnet50_2"), std::string::npos) << message;
  EXPECT_NE(message.find("patchvec weights fetch imagenet --backbone wide_resnet50_2"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find((dir_ / "cache" / "wide_resnet50_2-95faca4d.pth").string()),
            std::string::npos)
      << message;

  const testing::ScopedEnv offline("PATCHVEC_OFFLINE", "1");
  const std::string refused = resolve_error("imagenet", "resnet18");
  EXPECT_NE(refused.find("are not in the cache"), std::string::npos) << refused;
  EXPECT_NE(refused.find("downloads are off (PATCHVEC_OFFLINE)"), std::string::npos) << refused;
}

TEST_F(Weights, AMirrorServesNamedWeightsWithTheSameHashCheck) {
  // The fixture is not torchvision's file: the mirror's copy fails the hash prefix.
  server_.add("resnet18-f37072fd.pth", bytes_);
  const testing::ScopedEnv mirror("PATCHVEC_WEIGHTS_MIRROR", server_.url("files"));
  const std::string message = resolve_error("imagenet", "resnet18");
  EXPECT_NE(message.find("expected one starting with f37072fd"), std::string::npos) << message;
  EXPECT_TRUE(cache_listing(dir_ / "cache").empty());
}

TEST_F(Weights, AFileCopiedInByHandIsUsedOnlyIfItsHashFits) {
  const std::string name = "resnet18-" + sha256_.substr(0, 8) + ".pth";
  const std::string url =
      "http://127.0.0.1:" + std::to_string(testing::closed_port()) + "/models/" + name;
  std::filesystem::create_directories(dir_ / "cache");
  std::filesystem::copy_file(checkpoint(), dir_ / "cache" / name);
  EXPECT_EQ(resolve_weights(url, "resnet18", options()), dir_ / "cache" / name);

  // The same name with other bytes is not trusted, and not silently replaced offline.
  testing::write_text(dir_ / "cache" / name, "not these weights");
  const testing::ScopedEnv offline("PATCHVEC_OFFLINE", "1");
  const std::string message = resolve_error(url);
  EXPECT_NE(message.find("SHA-256 is not one starting with " + sha256_.substr(0, 8)),
            std::string::npos)
      << message;
}

TEST_F(Weights, TwoUrlsWithOneFileNameDoNotOverwriteEachOther) {
  resolve_weights(server_.url("files/resnet18.pth"), "resnet18", options());
  testing::LocalServer second;
  second.add("resnet18.pth", "different bytes");
  const std::string message = resolve_error(second.url("files/resnet18.pth"));
  EXPECT_NE(message.find("the cache already holds a different resnet18.pth"), std::string::npos)
      << message;
  EXPECT_EQ(second.requests(), 0);
  EXPECT_EQ(sha256_file_hex(dir_ / "cache" / "resnet18.pth"), sha256_);
}

TEST_F(Weights, FilesAreUsedAsTheyAre) {
  EXPECT_EQ(resolve_weights(checkpoint().string(), "resnet18", options()), checkpoint());
  EXPECT_TRUE(resolve_weights("random", "resnet18", options()).empty());
  const std::string message = resolve_error((dir_ / "missing.pth").string());
  EXPECT_NE(message.find("missing.pth does not exist"), std::string::npos) << message;
  EXPECT_EQ(server_.requests(), 0);
}

TEST(WeightsCache, FollowsXdg) {
  const testing::ScopedEnv xdg("XDG_CACHE_HOME", "/somewhere/cache");
  EXPECT_EQ(weights_cache_dir(), "/somewhere/cache/patchvec/weights");
  const testing::ScopedEnv no_xdg("XDG_CACHE_HOME", std::nullopt);
  const testing::ScopedEnv home("HOME", "/home/inspector");
  EXPECT_EQ(weights_cache_dir(), "/home/inspector/.cache/patchvec/weights");
}

}  // namespace
}  // namespace pv
