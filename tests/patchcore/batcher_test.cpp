// The prediction batcher: concurrent requests answered exactly as one by one, a failing image
// failing only its own request, and backbones shared between categories with identical weights.
#include <atomic>
#include <barrier>
#include <chrono>
#include <map>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include <patchvec/batcher.h>
#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/synth.h>

#include "testing.h"

namespace pv {
namespace {

constexpr int kClients = 8;

// Two categories on the same pretrained (fixture) weights, one more cut into tiles, and one on a
// random backbone whose BatchNorm statistics are its own.
class Batcher : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    synth::write_dataset(*dir_ / "data", {.categories = {"tile", "leather"},
                                          .train = 6,
                                          .test_good = 2,
                                          .test_bad = 1,
                                          .size = 160});
    const auto fit = [](const std::string& category, const std::string& name,
                        PatchCoreOptions options) {
      std::vector<std::filesystem::path> train;
      for (const Sample& s : read_category(*dir_ / "data", category).train) {
        train.push_back(s.image);
      }
      std::filesystem::create_directories(*dir_ / "models");
      Model::fit(train, name, options).save(*dir_ / "models" / (name + ".pvm"));
    };
    PatchCoreOptions pretrained;
    pretrained.embedder = {.backbone = "resnet18",
                           .weights = testing::nn_fixtures() / "resnet18.safetensors",
                           .threads = 2};
    fit("tile", "tile", pretrained);
    fit("leather", "leather", pretrained);
    PatchCoreOptions tiled = pretrained;
    tiled.embedder.tiling = {.size = 96, .overlap = 16};
    fit("tile", "tiled", tiled);
    PatchCoreOptions random;
    random.embedder = {.backbone = "resnet18", .threads = 2};
    fit("leather", "random", random);
    for (const std::string category : {"tile", "leather"}) {
      for (const Sample& s : read_category(*dir_ / "data", category).test) {
        images_.push_back(load_image(s.image));
      }
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
    images_.clear();
  }

  static std::map<std::string, Model> load(std::shared_ptr<BackboneCache> cache) {
    std::map<std::string, Model> models;
    for (const std::string name : {"tile", "leather", "tiled", "random"}) {
      models.emplace(name, Model::load(*dir_ / "models" / (name + ".pvm"),
                                       {.threads = 2, .batch_size = kClients, .backbones = cache}));
    }
    return models;
  }

  static testing::TempDir* dir_;
  static std::vector<Image> images_;
};
testing::TempDir* Batcher::dir_ = nullptr;
std::vector<Image> Batcher::images_;

void expect_identical(const Prediction& a, const Prediction& b, const std::string& what) {
  EXPECT_EQ(a.score, b.score) << what;
  EXPECT_EQ(a.map.values, b.map.values) << what;
  EXPECT_EQ(a.embedding, b.embedding) << what;
  EXPECT_EQ(a.patch_distances, b.patch_distances) << what;
}

TEST_F(Batcher, IdenticalBackbonesAreSharedAndRandomOnesAreNot) {
  const auto cache = std::make_shared<BackboneCache>();
  const auto models = load(cache);
  // tile and leather share the pretrained backbone; tiled cuts images (another preprocessing),
  // and random has BatchNorm statistics of its own.
  EXPECT_EQ(&models.at("tile").backbone(), &models.at("leather").backbone());
  EXPECT_NE(&models.at("tile").backbone(), &models.at("tiled").backbone());
  EXPECT_NE(&models.at("tile").backbone(), &models.at("random").backbone());
  EXPECT_EQ(cache->size(), 3u);
  // Without a cache every model has its own.
  const auto own = load(nullptr);
  EXPECT_NE(&own.at("tile").backbone(), &own.at("leather").backbone());
}

TEST_F(Batcher, ConcurrentRequestsAreAnsweredAsOneByOne) {
  const auto models = load(std::make_shared<BackboneCache>());
  const std::vector<std::string> names = {"tile", "leather", "tiled", "random"};
  // One by one, without the batcher: what every request must get.
  std::map<std::pair<std::string, std::size_t>, Prediction> expected;
  for (const auto& name : names) {
    for (std::size_t i = 0; i < images_.size(); ++i) {
      expected[{name, i}] = models.at(name).predict(images_[i]);
    }
  }
  PredictionBatcher batcher({.max_batch = kClients, .max_wait_ms = 20});
  std::barrier start(kClients);
  std::vector<std::thread> clients;
  std::atomic<int> compared = 0;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      start.arrive_and_wait();
      for (int round = 0; round < 6; ++round) {
        const std::string& name = names[(c + round) % names.size()];
        const std::size_t i = static_cast<std::size_t>(c * 7 + round) % images_.size();
        const Prediction p = batcher.predict(models.at(name), images_[i]);
        expect_identical(p, expected.at({name, i}), name + " image " + std::to_string(i));
        ++compared;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(compared, kClients * 6);
  const BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.images, kClients * 6);
  EXPECT_LT(stats.batches, stats.images) << "no request ever shared a forward pass";
}

TEST_F(Batcher, AFailingImageFailsOnlyItsOwnRequest) {
  const auto models = load(std::make_shared<BackboneCache>());
  const Model& tile = models.at("tile");
  const Prediction expected = tile.predict(images_[0]);
  // An image whose pixels do not match its size (a library caller's mistake) cannot be
  // preprocessed; an image smaller than a tile cannot be cut.
  Image poisoned = images_[0];
  poisoned.pixels.resize(poisoned.pixels.size() - 3);
  EXPECT_THROW(tile.predict(poisoned), ImageError);
  Image small{.width = 64, .height = 64};
  small.pixels.assign(64 * 64 * 3, 0.5f);
  PredictionBatcher batcher({.max_batch = kClients, .max_wait_ms = 50});
  std::barrier start(kClients);
  std::vector<std::thread> clients;
  std::atomic<int> poisoned_failed = 0, small_failed = 0, succeeded = 0;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      start.arrive_and_wait();
      try {
        if (c == 1 || c == 5) {
          batcher.predict(tile, poisoned);
        } else if (c == 3) {
          batcher.predict(models.at("tiled"), small);
        } else {
          expect_identical(batcher.predict(tile, images_[0]), expected,
                           "client " + std::to_string(c));
          ++succeeded;
        }
      } catch (const ImageError& e) {
        const std::string message = e.what();
        if (message.find("smaller than one 96-pixel tile") != std::string::npos) {
          ++small_failed;
        } else {
          EXPECT_NE(message.find("values, not 3 per pixel"), std::string::npos) << message;
          ++poisoned_failed;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(poisoned_failed, 2);
  EXPECT_EQ(small_failed, 1);
  EXPECT_EQ(succeeded, kClients - 3);
  // The poisoned images shared forward passes with good ones.
  EXPECT_LT(batcher.stats().batches, kClients - 1);
}

// A batch waits for predictions announced for its backbone, and for nothing else.
TEST_F(Batcher, ABatchWaitsOnlyForAnnouncedPredictions) {
  const auto models = load(std::make_shared<BackboneCache>());
  const Model& tile = models.at("tile");
  const Model& leather = models.at("leather");  // the same backbone
  const auto start = std::chrono::steady_clock::now();
  const auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  PredictionBatcher batcher({.max_batch = 4, .max_wait_ms = 60'000});
  // Alone and unannounced: runs at once, not after a minute.
  batcher.predict(tile, images_[0]);
  EXPECT_LT(seconds(), 30);
  EXPECT_EQ(batcher.stats().batches, 1);
  // Announced: the batch that starts meanwhile waits for it, and both go through together.
  PredictionBatcher::Announcement coming = batcher.announce(leather);
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    batcher.predict(leather, images_[1], &coming);
  });
  batcher.predict(tile, images_[2]);
  late.join();
  EXPECT_EQ(batcher.stats().batches, 2);
  EXPECT_EQ(batcher.stats().images, 3);
  // Withdrawn (its image could not be read): the waiting batch goes on without it.
  std::optional<PredictionBatcher::Announcement> never(batcher.announce(tile));
  std::thread withdraw([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    never.reset();
  });
  batcher.predict(tile, images_[3]);
  withdraw.join();
  EXPECT_EQ(batcher.stats().batches, 3);
  EXPECT_LT(seconds(), 30);
}

TEST(BatcherOptions, BadSettingsAreRefused) {
  EXPECT_THROW(PredictionBatcher({.max_batch = 0}), Error);
  EXPECT_THROW(PredictionBatcher({.max_batch = 2, .max_wait_ms = -1}), Error);
}

}  // namespace
}  // namespace pv
