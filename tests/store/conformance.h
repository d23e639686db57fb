// The store conformance suite: every contract of store.h's ImageIndex and ReportLog, written
// once and run on each backend (embedded_store_test.cpp and pg_store_test.cpp instantiate it).
// A backend is a type with open(): a handle on one fresh store per test; each call opens another
// handle on the same store, as another process would (a reopen).
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/store.h>

#include "store/store_testing.h"

namespace pv::testing {

template <typename Backend>
class StoreConformance : public ::testing::Test {
 protected:
  Backend backend_;
  std::unique_ptr<VectorStore> store_ = backend_.open();
};

TYPED_TEST_SUITE_P(StoreConformance);

TYPED_TEST_P(StoreConformance, NearestIsTheBruteForceCosineRanking) {
  VectorStore& store = *this->store_;
  std::mt19937 rng(7);
  const auto tile = random_images(rng, "tile", 300, 64);
  store.replace_dataset("tile", tile);
  store.replace_dataset("grid", random_images(rng, "grid", 50, 64));
  for (int q = 0; q < 5; ++q) {
    const std::vector<float> query = random_vector(rng, 64);
    std::vector<std::pair<double, std::string>> expected;
    for (const StoredImage& image : tile) {
      if (!image.anomalous) expected.emplace_back(cosine(query, image.embedding), image.path);
    }
    std::sort(expected.begin(), expected.end(), std::greater<>());
    const auto matches = store.nearest(query, 10, {.category = "tile", .anomalous = false});
    ASSERT_EQ(matches.size(), 10u);
    for (std::size_t i = 0; i < matches.size(); ++i) {
      EXPECT_EQ(matches[i].image.path, expected[i].second) << i;
      EXPECT_NEAR(matches[i].similarity, expected[i].first, 1e-6);
      EXPECT_EQ(matches[i].image.category, "tile");
      EXPECT_FALSE(matches[i].image.anomalous);
      EXPECT_TRUE(matches[i].image.embedding.empty());
    }
  }
}

TYPED_TEST_P(StoreConformance, FiltersAndTies) {
  VectorStore& store = *this->store_;
  const std::vector<float> v = {1, 0, 0};
  store.add_image({.path = "a", .category = "tile", .embedding = v});
  store.add_image({.path = "b",
                   .category = "tile",
                   .anomalous = true,
                   .defect = "oil",
                   .embedding = {2, 0, 0}});
  store.add_image({.path = "c", .category = "grid", .embedding = v});
  store.add_image({.path = "d", .category = "tile", .embedding = {0, 1, 0}});
  const auto all = store.nearest(v, 10);
  ASSERT_EQ(all.size(), 4u);
  // a, b and c are equally similar (1.0): id order decides.
  EXPECT_EQ(all[0].image.path, "a");
  EXPECT_EQ(all[1].image.path, "b");
  EXPECT_EQ(all[2].image.path, "c");
  EXPECT_NEAR(all[3].similarity, 0.0, 1e-6);
  const auto defects = store.nearest(v, 10, {.category = "tile", .anomalous = true});
  ASSERT_EQ(defects.size(), 1u);
  EXPECT_EQ(defects[0].image.defect, "oil");
  EXPECT_EQ(store.nearest(v, 10, {.category = "wood"}).size(), 0u);
}

TYPED_TEST_P(StoreConformance, ReindexingReplacesNeverDuplicatesAndKeepsOtherCategories) {
  VectorStore& store = *this->store_;
  std::mt19937 rng(1);
  store.replace_dataset("tile", random_images(rng, "tile", 20, 8));
  store.replace_dataset("grid", random_images(rng, "grid", 5, 8));
  store.replace_dataset("tile", random_images(rng, "tile", 12, 8));
  EXPECT_EQ(store.replace_dataset("tile", random_images(rng, "tile", 12, 8)), 12u);
  EXPECT_EQ(store.image_count("tile"), 12u);
  EXPECT_EQ(store.image_count("grid"), 5u);
  EXPECT_EQ(store.image_count(), 17u);
  const auto images = store.images("grid");
  ASSERT_EQ(images.size(), 5u);
  EXPECT_TRUE(std::is_sorted(images.begin(), images.end(),
                             [](const auto& a, const auto& b) { return a.id < b.id; }));
  EXPECT_EQ(images[0].embedding.size(), 8u);
}

TYPED_TEST_P(StoreConformance, ReindexingKeepsAddedImages) {
  VectorStore& store = *this->store_;
  std::mt19937 rng(4);
  store.replace_dataset("tile", random_images(rng, "tile", 8, 6));
  const std::vector<float> oil = random_vector(rng, 6);
  const std::int64_t added = store.add_image({.path = "labelled/oil.png",
                                              .category = "tile",
                                              .split = Split::kAdded,
                                              .anomalous = true,
                                              .defect = "oil",
                                              .embedding = oil});
  EXPECT_EQ(store.image(added)->split, Split::kAdded);
  store.replace_dataset("tile", random_images(rng, "tile", 7, 6));
  const auto reopened = this->backend_.open();
  EXPECT_EQ(reopened->image_count("tile"), 8u);  // 7 from the dataset and the added one
  const auto kept = reopened->image(added);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->defect, "oil");
  EXPECT_EQ(kept->split, Split::kAdded);
  EXPECT_EQ(kept->embedding, oil);
  EXPECT_NE(reopened->images("tile").back().split, Split::kAdded);  // newer ids
  reopened->replace_dataset("tile", {});  // an empty dataset still keeps it
  EXPECT_EQ(store.image_count("tile"), 1u);
  // Added images come one at a time: a dataset holding one is refused, and nothing changes.
  std::vector<StoredImage> with_added = random_images(rng, "tile", 3, 6);
  with_added[1].split = Split::kAdded;
  EXPECT_THROW(store.replace_dataset("tile", with_added), Error);
  EXPECT_EQ(store.image_count("tile"), 1u);
}

// A handle opened before anything was stored (a service started before the first index) sees
// what another handle stores afterwards, and the two writers lose nothing of each other's.
TYPED_TEST_P(StoreConformance, AnotherHandleSeesTheChanges) {
  VectorStore& serving = *this->store_;
  std::mt19937 rng(3);
  const auto images = random_images(rng, "tile", 6, 8);
  EXPECT_EQ(serving.image_count(), 0u);
  EXPECT_TRUE(serving.nearest(images[0].embedding, 3).empty());
  {
    const auto indexer = this->backend_.open();
    indexer->replace_dataset("tile", images);
    indexer->add_report({.path = "new.png", .category = "tile", .score = 9});
  }
  EXPECT_EQ(serving.image_count("tile"), 6u);
  const auto found = serving.nearest(images[2].embedding, 1);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].image.path, images[2].path);
  ASSERT_EQ(serving.reports({}).size(), 1u);
  EXPECT_TRUE(serving.report(serving.reports({})[0].id).has_value());

  // And again after it wrote itself: its own change and the other's are both there.
  const std::int64_t mine =
      serving.add_image({.path = "mine.png", .category = "tile", .embedding = images[0].embedding});
  this->backend_.open()->replace_dataset("tile", std::span<const StoredImage>(images).first(3));
  EXPECT_EQ(serving.image_count("tile"), 4u);
  ASSERT_TRUE(serving.image(mine).has_value());
  EXPECT_EQ(serving.image(mine)->path, "mine.png");
  // Re-indexed images get new ids, after the added one; every field comes back as given.
  const auto stored = this->backend_.open()->images("tile");
  ASSERT_EQ(stored.size(), 4u);
  EXPECT_EQ(stored[0].path, "mine.png");
  EXPECT_EQ(stored[1].path, images[0].path);
  EXPECT_EQ(stored[1].embedding, images[0].embedding);
  EXPECT_EQ(stored[1].score, images[0].score);
  EXPECT_EQ(stored[1].verdict, images[0].verdict);
  EXPECT_EQ(stored[1].split, images[0].split);
  EXPECT_EQ(stored[1].defect, images[0].defect);
}

TYPED_TEST_P(StoreConformance, ReportsNewestFirst) {
  VectorStore& store = *this->store_;
  store.add_image({.path = "known.png",
                   .category = "tile",
                   .anomalous = true,
                   .defect = "crack",
                   .embedding = {1, 2}});
  const auto match = store.nearest(std::vector<float>{1, 2}, 1);
  const std::int64_t first = store.add_report({.path = "q1.png",
                                               .category = "tile",
                                               .score = 3,
                                               .threshold = 2,
                                               .best_similarity = 0.5,
                                               .matches = match});
  const std::int64_t second =
      store.add_report({.path = "q2.png", .category = "grid", .score = 5, .threshold = 4});
  EXPECT_LT(first, second);
  const auto reopened = this->backend_.open();
  const auto all = reopened->reports({.limit = 10});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].path, "q2.png");
  EXPECT_EQ(all[1].id, first);
  EXPECT_EQ(all[1].matches.size(), 1u);
  EXPECT_EQ(all[1].matches[0].image.defect, "crack");
  EXPECT_EQ(all[1].created.size(), 20u);  // 2026-11-28T21:04:05Z
  EXPECT_EQ(reopened->reports({.category = "tile", .limit = 10}).size(), 1u);
  EXPECT_EQ(reopened->reports({.limit = 1}).size(), 1u);
  EXPECT_EQ(reopened->reports({.since = "2000-01-01", .limit = 10}).size(), 2u);
  EXPECT_EQ(reopened->reports({.since = "2999-01-01T00:00:00", .limit = 10}).size(), 0u);
}

TYPED_TEST_P(StoreConformance, DimensionMismatchIsOneClearError) {
  VectorStore& store = *this->store_;
  store.add_image({.path = "a", .category = "tile", .embedding = {1, 2, 3}});
  try {
    store.add_image({.path = "b", .category = "tile", .embedding = {1, 2}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3-dimensional"), std::string::npos) << e.what();
  }
  EXPECT_THROW(store.nearest(std::vector<float>{1, 2}, 5), Error);
  EXPECT_EQ(this->backend_.open()->image_count(), 1u);  // the bad row was not kept
}

TYPED_TEST_P(StoreConformance, ReportsAreResolvedOnceAndSurviveAReopen) {
  check_report_lifecycle(*this->store_);
  const auto reopened = this->backend_.open();
  const auto resolved = reopened->reports({.status = ReportStatus::kResolved});
  ASSERT_EQ(resolved.size(), 2u);
  EXPECT_EQ(resolved[1].defect, "crack");
  EXPECT_EQ(resolved[1].resolution, Resolution::kDefect);
}

TYPED_TEST_P(StoreConformance, RacingDecisionsStoreOnlyTheWinnersImage) {
  check_racing_decisions(*this->store_);
}

TYPED_TEST_P(StoreConformance, AReportSentTwiceIsStoredOnce) {
  check_idempotent_reports(*this->store_);
  // The keys survive a reopen: a spool flushing after a restart still stores once.
  const auto reopened = this->backend_.open();
  for (const AnomalyReport& r : reopened->reports({.limit = 1000})) {
    EXPECT_EQ(reopened->add_report(r), r.id) << r.idempotency_key;
  }
  EXPECT_EQ(reopened->reports({.limit = 1000}).size(), 2u);
}

REGISTER_TYPED_TEST_SUITE_P(StoreConformance, NearestIsTheBruteForceCosineRanking, FiltersAndTies,
                            ReindexingReplacesNeverDuplicatesAndKeepsOtherCategories,
                            ReindexingKeepsAddedImages, AnotherHandleSeesTheChanges,
                            ReportsNewestFirst, DimensionMismatchIsOneClearError,
                            ReportsAreResolvedOnceAndSurviveAReopen,
                            RacingDecisionsStoreOnlyTheWinnersImage, AReportSentTwiceIsStoredOnce);

}  // namespace pv::testing
