// The embedded vector store: exact cosine ranking, atomic replacement, persistence, damage.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <patchvec/error.h>
#include <patchvec/store.h>

#include "store/store_testing.h"
#include "testing.h"
#include "util/sha256.h"

namespace pv {
namespace {

using testing::cosine;
using testing::random_vector;

std::vector<StoredImage> random_images(std::mt19937& rng, const std::string& category, int count,
                                       std::size_t dim) {
  return testing::random_images(rng, category, count, dim);
}

TEST(EmbeddedStore, NearestIsTheBruteForceCosineRanking) {
  testing::TempDir dir;
  std::mt19937 rng(7);
  auto store = open_embedded_store(dir / "store.pvs");
  const auto tile = random_images(rng, "tile", 300, 64);
  store->replace_dataset("tile", tile);
  store->replace_dataset("grid", random_images(rng, "grid", 50, 64));
  for (int q = 0; q < 5; ++q) {
    const std::vector<float> query = random_vector(rng, 64);
    std::vector<std::pair<double, std::string>> expected;
    for (const StoredImage& image : tile) {
      if (!image.anomalous) expected.emplace_back(cosine(query, image.embedding), image.path);
    }
    std::sort(expected.begin(), expected.end(), std::greater<>());
    const auto matches = store->nearest(query, 10, {.category = "tile", .anomalous = false});
    ASSERT_EQ(matches.size(), 10u);
    for (std::size_t i = 0; i < matches.size(); ++i) {
      EXPECT_EQ(matches[i].image.path, expected[i].second) << i;
      EXPECT_NEAR(matches[i].similarity, expected[i].first, 1e-9);
      EXPECT_EQ(matches[i].image.category, "tile");
      EXPECT_FALSE(matches[i].image.anomalous);
      EXPECT_TRUE(matches[i].image.embedding.empty());
    }
  }
}

TEST(EmbeddedStore, FiltersAndTies) {
  testing::TempDir dir;
  auto store = open_embedded_store(dir / "store.pvs");
  const std::vector<float> v = {1, 0, 0};
  store->add_image({.path = "a", .category = "tile", .embedding = v});
  store->add_image({.path = "b",
                    .category = "tile",
                    .anomalous = true,
                    .defect = "oil",
                    .embedding = {2, 0, 0}});
  store->add_image({.path = "c", .category = "grid", .embedding = v});
  store->add_image({.path = "d", .category = "tile", .embedding = {0, 1, 0}});
  const auto all = store->nearest(v, 10);
  ASSERT_EQ(all.size(), 4u);
  // a, b and c are equally similar (1.0): id order decides.
  EXPECT_EQ(all[0].image.path, "a");
  EXPECT_EQ(all[1].image.path, "b");
  EXPECT_EQ(all[2].image.path, "c");
  EXPECT_NEAR(all[3].similarity, 0.0, 1e-12);
  const auto defects = store->nearest(v, 10, {.category = "tile", .anomalous = true});
  ASSERT_EQ(defects.size(), 1u);
  EXPECT_EQ(defects[0].image.defect, "oil");
  EXPECT_EQ(store->nearest(v, 10, {.category = "wood"}).size(), 0u);
}

TEST(EmbeddedStore, ReindexingReplacesAndKeepsOtherCategories) {
  testing::TempDir dir;
  std::mt19937 rng(1);
  auto store = open_embedded_store(dir / "store.pvs");
  store->replace_dataset("tile", random_images(rng, "tile", 20, 8));
  store->replace_dataset("grid", random_images(rng, "grid", 5, 8));
  store->replace_dataset("tile", random_images(rng, "tile", 12, 8));
  EXPECT_EQ(store->image_count("tile"), 12u);
  EXPECT_EQ(store->image_count("grid"), 5u);
  EXPECT_EQ(store->image_count(), 17u);
}

TEST(EmbeddedStore, AnotherProcessSeesTheChanges) {
  testing::TempDir dir;
  std::mt19937 rng(2);
  const auto images = random_images(rng, "leather", 10, 16);
  auto first = open_embedded_store(dir / "store.pvs");
  auto second = open_embedded_store(dir / "store.pvs");  // opened before anything was written
  first->replace_dataset("leather", images);
  second->add_image({.path = "extra.png",
                     .category = "leather",
                     .split = Split::kAdded,
                     .anomalous = true,
                     .defect = "cut",
                     .embedding = images[0].embedding});
  const auto reopened = open_embedded_store(dir / "store.pvs");
  EXPECT_EQ(reopened->image_count(), 11u);  // the second writer did not lose the first's rows
  const auto stored = reopened->image(1);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->path, images[0].path);
  EXPECT_EQ(stored->embedding, images[0].embedding);
  EXPECT_EQ(stored->score, images[0].score);
  const auto match = reopened->nearest(images[0].embedding, 1, {.anomalous = true});
  ASSERT_EQ(match.size(), 1u);
  EXPECT_EQ(match[0].image.path, "extra.png");
}

TEST(EmbeddedStore, AnOpenStoreAnswersWithAnotherWritersChanges) {
  // A running service keeps its store open while `patchvec index` rewrites the file.
  testing::TempDir dir;
  std::mt19937 rng(3);
  const auto images = random_images(rng, "tile", 6, 8);
  auto serving = open_embedded_store(dir / "store.pvs");
  EXPECT_EQ(serving->image_count(), 0u);
  EXPECT_TRUE(serving->nearest(images[0].embedding, 3).empty());
  {
    auto indexer = open_embedded_store(dir / "store.pvs");
    indexer->replace_dataset("tile", images);
    indexer->add_report({.path = "new.png", .category = "tile", .score = 9});
  }
  EXPECT_EQ(serving->image_count("tile"), 6u);
  const auto found = serving->nearest(images[2].embedding, 1);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].image.path, images[2].path);
  EXPECT_EQ(serving->reports({}).size(), 1u);
  ASSERT_TRUE(serving->report(1).has_value());

  // And again after it wrote itself: its own change and the other's are both there.
  serving->add_image({.path = "mine.png", .category = "tile", .embedding = images[0].embedding});
  open_embedded_store(dir / "store.pvs")
      ->replace_dataset("tile", std::span<const StoredImage>(images).first(3));
  EXPECT_EQ(serving->image_count("tile"), 4u);
  ASSERT_TRUE(serving->image(7).has_value());
  EXPECT_EQ(serving->image(7)->path, "mine.png");
}

TEST(EmbeddedStore, ReportsNewestFirst) {
  testing::TempDir dir;
  auto store = open_embedded_store(dir / "store.pvs");
  store->add_image({.path = "known.png",
                    .category = "tile",
                    .anomalous = true,
                    .defect = "crack",
                    .embedding = {1, 2}});
  const auto match = store->nearest(std::vector<float>{1, 2}, 1);
  const std::int64_t first = store->add_report(
      {.path = "q1.png", .category = "tile", .score = 3, .threshold = 2, .matches = match});
  const std::int64_t second =
      store->add_report({.path = "q2.png", .category = "grid", .score = 5, .threshold = 4});
  EXPECT_LT(first, second);
  const auto reopened = open_embedded_store(dir / "store.pvs");
  const auto all = reopened->reports({.limit = 10});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].path, "q2.png");
  EXPECT_EQ(all[1].matches.size(), 1u);
  EXPECT_EQ(all[1].matches[0].image.defect, "crack");
  EXPECT_FALSE(all[1].created.empty());
  EXPECT_EQ(reopened->reports({.category = "tile", .limit = 10}).size(), 1u);
  EXPECT_EQ(reopened->reports({.limit = 1}).size(), 1u);
  EXPECT_EQ(reopened->reports({.since = "2000-01-01", .limit = 10}).size(), 2u);
  EXPECT_EQ(reopened->reports({.since = "2999-01-01T00:00:00", .limit = 10}).size(), 0u);
}

TEST(EmbeddedStore, DimensionMismatchIsAnError) {
  testing::TempDir dir;
  auto store = open_embedded_store(dir / "store.pvs");
  store->add_image({.path = "a", .category = "tile", .embedding = {1, 2, 3}});
  EXPECT_THROW(store->add_image({.path = "b", .category = "tile", .embedding = {1, 2}}), Error);
  try {
    store->nearest(std::vector<float>{1, 2}, 5);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3-dimensional"), std::string::npos) << e.what();
  }
  EXPECT_EQ(open_embedded_store(dir / "store.pvs")->image_count(), 1u);  // the bad row was not kept
}

TEST(EmbeddedStore, DamagedFilesAreNamedErrors) {
  testing::TempDir dir;
  const auto path = dir / "store.pvs";
  open_embedded_store(path)->add_image({.path = "a", .category = "tile", .embedding = {1, 2}});
  const std::string bytes = testing::read_text(path);
  const auto expect_error = [&](const std::string& content, const std::string& words) {
    testing::write_text(path, content);
    try {
      open_embedded_store(path);
      FAIL() << "expected an error for " << words;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path.string()), std::string::npos) << message;
      EXPECT_NE(message.find(words), std::string::npos) << message;
    }
  };
  expect_error(bytes.substr(0, bytes.size() - 10), "truncated");  // as model files say it
  std::string flipped = bytes;
  flipped[30] ^= 1;
  expect_error(flipped, "checksum");
  expect_error("hello", "not a PatchVec store");
}

TEST(EmbeddedStore, ReindexingKeepsAddedImages) {
  testing::TempDir dir;
  std::mt19937 rng(4);
  auto store = open_embedded_store(dir / "store.pvs");
  store->replace_dataset("tile", random_images(rng, "tile", 8, 6));
  const std::int64_t added = store->add_image({.path = "labelled/oil.png",
                                               .category = "tile",
                                               .split = Split::kAdded,
                                               .anomalous = true,
                                               .defect = "oil",
                                               .embedding = random_vector(rng, 6)});
  EXPECT_EQ(store->image(added)->source, kSourceAdded);
  store->replace_dataset("tile", random_images(rng, "tile", 7, 6));
  const auto reopened = open_embedded_store(dir / "store.pvs");
  EXPECT_EQ(reopened->image_count("tile"), 8u);  // 7 from the dataset and the added one
  ASSERT_TRUE(reopened->image(added).has_value());
  EXPECT_EQ(reopened->image(added)->defect, "oil");
  EXPECT_EQ(reopened->image(added + 1)->source, kSourceDataset);
}

TEST(EmbeddedStore, StaleTemporaryFilesOfDeadWritersAreCleaned) {
  testing::TempDir dir;
  auto store = open_embedded_store(dir / "store.pvs");
  store->add_image({.path = "a", .category = "tile", .embedding = {1, 2}});
  // What a killed `index` leaves: its temporary file, never renamed.
  testing::write_text(dir / "store.pvs.tmp-999999-12345", "half a store");
  testing::write_text(dir / "store.pvs.notes", "not ours");
  store->add_image({.path = "b", .category = "tile", .embedding = {2, 1}});
  EXPECT_FALSE(std::filesystem::exists(dir / "store.pvs.tmp-999999-12345"));
  EXPECT_TRUE(std::filesystem::exists(dir / "store.pvs.notes"));
  EXPECT_EQ(open_embedded_store(dir / "store.pvs")->image_count(), 2u);
}

// A store file with this header and these embeddings, checksummed: what a hostile writer makes.
std::string forged_store(const nlohmann::json& header, std::uint32_t dim,
                         const std::vector<float>& embeddings) {
  const std::string text = header.dump();
  std::string bytes = std::string("PVSTORE\0", 8);
  const std::uint32_t version = 1;
  const std::uint64_t length = text.size();
  bytes.append(reinterpret_cast<const char*>(&version), 4);
  bytes.append(reinterpret_cast<const char*>(&dim), 4);
  bytes.append(reinterpret_cast<const char*>(&length), 8);
  bytes += text;
  bytes.append(reinterpret_cast<const char*>(embeddings.data()), embeddings.size() * 4);
  return bytes + sha256_hex(std::as_bytes(std::span(bytes.data(), bytes.size())));
}

TEST(EmbeddedStore, ForgedFilesAreRefused) {
  testing::TempDir dir;
  const auto path = dir / "store.pvs";
  const auto image = [](std::int64_t id, const std::string& source = "dataset") {
    return nlohmann::json{{"id", id},         {"path", "a.png"},     {"category", "tile"},
                          {"source", source}, {"split", "train"},    {"anomalous", false},
                          {"defect", "good"}, {"verdict", "normal"}, {"score", nullptr}};
  };
  const auto header = [&](nlohmann::json images, std::int64_t next = 10) {
    return nlohmann::json{{"images", std::move(images)},
                          {"reports", nlohmann::json::array()},
                          {"next_image_id", next},
                          {"next_report_id", 1}};
  };
  const auto refusal = [&](const std::string& bytes) {
    testing::write_text(path, bytes);
    try {
      open_embedded_store(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("opened");
  };
  // The control: a valid forged file opens.
  EXPECT_EQ(refusal(forged_store(header(nlohmann::json::array({image(1)})), 2, {1, 2})), "opened");
  // Images without embeddings once made every search read past them.
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(1)})), 0, {}))
                .find("without embeddings"),
            std::string::npos);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(1)})), 2, {1, nan}))
                .find("non-finite"),
            std::string::npos);
  EXPECT_NE(
      refusal(forged_store(header(nlohmann::json::array({image(1), image(1)})), 2, {1, 2, 3, 4}))
          .find("repeated"),
      std::string::npos);
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(5)}), 3), 2, {1, 2}))
                .find("next ids"),
            std::string::npos);
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(1, "magic")})), 2, {1, 2}))
                .find("source 'magic'"),
            std::string::npos);
  nlohmann::json later = image(1);
  later["split"] = "later";
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({later})), 2, {1, 2}))
                .find("image split is 'later'"),
            std::string::npos);
  nlohmann::json unheard = image(1);
  unheard["verdict"] = "maybe";
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({unheard})), 2, {1, 2}))
                .find("stored verdict is 'maybe'"),
            std::string::npos);
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(1)})), 2, {1, 2, 3}))
                .find("size does not match"),
            std::string::npos);
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(1)})), 1u << 30, {1, 2}))
                .find("dimension"),
            std::string::npos);
}

// Files written before both stores kept a report's matches in one form: the nested form of the
// embedded store's first version, and images whose verdict was "" (not scored), still read.
TEST(EmbeddedStore, FilesOfTheEarlierFormsStillRead) {
  testing::TempDir dir;
  const nlohmann::json image = {{"id", 1},           {"path", "a.png"},  {"category", "tile"},
                                {"source", "added"}, {"split", "added"}, {"anomalous", true},
                                {"defect", "crack"}, {"verdict", ""},    {"score", nullptr}};
  const nlohmann::json report = {{"id", 1},
                                 {"path", "q.png"},
                                 {"category", "tile"},
                                 {"score", 3.5},
                                 {"threshold", 2.0},
                                 {"best_similarity", 0.8},
                                 {"created", "2026-01-02T03:04:05Z"},
                                 {"matches", {{{"image", image}, {"similarity", 0.75}}}}};
  testing::write_text(
      dir / "store.pvs",
      forged_store(
          {{"images", {image}}, {"reports", {report}}, {"next_image_id", 2}, {"next_report_id", 2}},
          2, {1, 2}));
  const auto store = open_embedded_store(dir / "store.pvs");
  const auto stored = store->image(1);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->verdict, Verdict::kUnknown);
  const auto r = store->report(1);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->matches.size(), 1u);
  EXPECT_EQ(r->matches[0].image.path, "a.png");
  EXPECT_TRUE(r->matches[0].image.anomalous);
  EXPECT_EQ(r->matches[0].image.defect, "crack");
  EXPECT_DOUBLE_EQ(r->matches[0].similarity, 0.75);
  EXPECT_EQ(r->status, "open");
  // A change rewrites the file in today's forms, which read back the same.
  store->add_image({.path = "b.png", .category = "tile", .embedding = {2, 1}});
  const auto again = open_embedded_store(dir / "store.pvs")->report(1);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->matches[0].image.path, "a.png");
  EXPECT_DOUBLE_EQ(again->matches[0].similarity, 0.75);
  EXPECT_EQ(open_embedded_store(dir / "store.pvs")->image(1)->verdict, Verdict::kUnknown);
}

TEST(EmbeddedStore, ReportsAreResolvedOnceAndSurviveAReopen) {
  testing::TempDir dir;
  auto store = open_embedded_store(dir / "store.pvs");
  testing::check_report_lifecycle(*store);
  const auto reopened = open_embedded_store(dir / "store.pvs");
  EXPECT_EQ(reopened->reports({.status = "resolved"}).size(), 2u);
  EXPECT_EQ(reopened->reports({.status = "resolved"})[1].defect, "crack");
}

// A store whose next ids are at the limit refuses the next image or report and stays usable
// (before: #9223372036854775807 was given, then every command failed on "next ids behind").
TEST(EmbeddedStore, IdsAtTheLimitAreRefusedAndTheStoreStaysUsable) {
  testing::TempDir dir;
  const auto path = dir / "store.pvs";
  const std::int64_t last = std::numeric_limits<std::int64_t>::max();
  const nlohmann::json image{
      {"id", 1},          {"path", "a.png"},    {"category", "tile"}, {"source", "dataset"},
      {"split", "train"}, {"anomalous", false}, {"defect", "good"},   {"verdict", "normal"},
      {"score", nullptr}};
  testing::write_text(path, forged_store(nlohmann::json{{"images", nlohmann::json::array({image})},
                                                        {"reports", nlohmann::json::array()},
                                                        {"next_image_id", last - 1},
                                                        {"next_report_id", last}},
                                         2, {1, 2}));
  auto store = open_embedded_store(path);
  StoredImage added{.path = "b.png", .category = "tile", .embedding = {3, 4}};
  EXPECT_EQ(store->add_image(added), last - 1);  // the last id there is
  try {
    store->add_image(added);
    ADD_FAILURE() << "an image id past the limit";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no image ids left"), std::string::npos) << e.what();
  }
  EXPECT_THROW(store->add_report({.path = "r.png", .category = "tile"}), Error);
  // Still readable, searchable and openable.
  EXPECT_EQ(open_embedded_store(path)->image_count("tile"), 2u);
  EXPECT_EQ(store->nearest(std::vector<float>{1, 2}, 5).size(), 2u);
}

TEST(EmbeddedStore, RacingDecisionsStoreOnlyTheWinnersImage) {
  testing::TempDir dir;
  auto store = open_embedded_store(dir / "store.pvs");
  testing::check_racing_decisions(*store);
}

TEST(EmbeddedStore, AReportSentTwiceIsStoredOnce) {
  testing::TempDir dir;
  auto store = open_embedded_store(dir / "store.pvs");
  testing::check_idempotent_reports(*store);
  // The keys survive a reopen: a spool flushing after a restart still stores once.
  const auto reopened = open_embedded_store(dir / "store.pvs");
  for (const AnomalyReport& r : reopened->reports({.limit = 1000})) {
    EXPECT_EQ(reopened->add_report(r), r.id) << r.idempotency_key;
  }
  EXPECT_EQ(reopened->reports({.limit = 1000}).size(), 2u);
}

}  // namespace
}  // namespace pv
