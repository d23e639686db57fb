// Helpers shared by the vector-store tests: random embeddings, the cosine reference, and the URL
// of the test server (scripts/pgvector-server.sh).
#pragma once

#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <patchvec/store.h>

namespace pv::testing {

inline std::vector<float> random_vector(std::mt19937& rng, std::size_t dim) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(dim);
  for (float& x : v) x = normal(rng);
  return v;
}

// `count` images of `category`: every `anomalous_every`-th one a "crack", with random embeddings.
inline std::vector<StoredImage> random_images(std::mt19937& rng, const std::string& category,
                                              int count, std::size_t dim,
                                              const std::string& prefix = "",
                                              int anomalous_every = 4) {
  std::vector<StoredImage> images;
  for (int i = 0; i < count; ++i) {
    const bool anomalous = i % anomalous_every == anomalous_every - 1;
    images.push_back({.path = prefix + category + "/" + std::to_string(i) + ".png",
                      .category = category,
                      .split = i % 2 ? Split::kTest : Split::kTrain,
                      .anomalous = anomalous,
                      .defect = anomalous ? "crack" : "good",
                      .score = float(i) / 3,
                      .verdict = verdict_of(anomalous),
                      .embedding = random_vector(rng, dim)});
  }
  return images;
}

// In double precision: the reference the stores' rankings are checked against.
inline double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

// A report sent twice under one idempotency key is stored once; its given time is kept.
inline void check_idempotent_reports(VectorStore& store) {
  const std::size_t before = store.reports({.limit = 1000}).size();
  const AnomalyReport report{.path = "twice.png",
                             .category = "tile",
                             .score = 3,
                             .created = "2026-01-02T03:04:05Z",
                             .idempotency_key = "0123456789abcdef0123456789abcdef"};
  const std::int64_t first = store.add_report(report);
  EXPECT_EQ(store.add_report(report), first);
  AnomalyReport other = report;
  other.idempotency_key = "another key";
  EXPECT_NE(store.add_report(other), first);
  EXPECT_EQ(store.reports({.limit = 1000}).size(), before + 2);
  const auto stored = store.report(first);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->created, "2026-01-02T03:04:05Z");
  EXPECT_EQ(stored->idempotency_key, report.idempotency_key);
  EXPECT_EQ(stored->status, ReportStatus::kOpen);
}

// Reports through their life, the same on every store: open, resolved once (a second time is a
// conflict), listed by status, marked applied; bad resolutions refused.
inline void check_report_lifecycle(VectorStore& store) {
  std::mt19937 rng(31);
  const auto v = random_vector(rng, 4);
  store.add_image({.path = "known.png",
                   .category = "tile",
                   .anomalous = true,
                   .defect = "oil",
                   .embedding = v});
  const auto matches = store.nearest(v, 1, {.anomalous = true});
  const std::int64_t a = store.add_report({.path = "a.png",
                                           .category = "tile",
                                           .score = 3,
                                           .threshold = 2,
                                           .best_similarity = 0.9,
                                           .matches = matches,
                                           .image = "/kept/a.png"});
  const std::int64_t b =
      store.add_report({.path = "b.png", .category = "tile", .score = 4, .threshold = 2});
  ASSERT_TRUE(store.report(a).has_value());
  EXPECT_EQ(store.report(a)->status, ReportStatus::kOpen);
  EXPECT_EQ(store.report(a)->image, "/kept/a.png");
  EXPECT_FALSE(store.report(a + 1000).has_value());

  const AnomalyReport resolved =
      store
          .resolve_report(
              a,
              {.resolution = Resolution::kDefect, .defect = "crack", .note = "edge", .by = "ana"},
              std::nullopt)
          .report;
  EXPECT_EQ(resolved.status, ReportStatus::kResolved);
  EXPECT_EQ(resolved.resolution, Resolution::kDefect);
  EXPECT_EQ(resolved.defect, "crack");
  EXPECT_EQ(resolved.note, "edge");
  EXPECT_EQ(resolved.resolved_by, "ana");
  EXPECT_EQ(resolved.resolved_at.size(), 20u);  // 2026-11-29T12:00:00Z
  EXPECT_EQ(resolved.matches.size(), 1u);
  EXPECT_THROW(
      store.resolve_report(a, {.resolution = Resolution::kFalseAlarm, .by = "bo"}, std::nullopt),
      ConflictError);
  EXPECT_THROW(
      store.resolve_report(a + 1000, {.resolution = Resolution::kFalseAlarm}, std::nullopt),
      NotFoundError);
  EXPECT_THROW(store.resolve_report(b, {.defect = "crack"}, std::nullopt), Error);  // false alarm
  EXPECT_THROW(store.resolve_report(b, {.resolution = Resolution::kDefect}, std::nullopt),
               Error);                                      // no type
  EXPECT_EQ(store.report(b)->status, ReportStatus::kOpen);  // refused changes change nothing

  store.resolve_report(b, {.resolution = Resolution::kFalseAlarm, .by = "bo"}, std::nullopt);
  EXPECT_EQ(store.reports({.status = ReportStatus::kOpen}).size(), 0u);
  EXPECT_EQ(store.reports({.status = ReportStatus::kResolved}).size(), 2u);
  const std::int64_t applied[] = {b};
  store.mark_applied(applied);
  EXPECT_TRUE(store.report(b)->applied);
  EXPECT_FALSE(store.report(a)->applied);
  const std::int64_t c = store.add_report({.path = "c.png", .category = "grid", .score = 1});
  const auto open = store.reports({.status = ReportStatus::kOpen});
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].id, c);
}

// Decisions racing on one report, each with the image it would store: exactly one wins, and only
// its image is stored (a refused decision changes nothing); a failing image leaves the report open.
inline void check_racing_decisions(VectorStore& store) {
  std::mt19937 rng(7);
  store.replace_dataset("race", random_images(rng, "race", 4, 16));
  const std::size_t before = store.image_count("race");
  const std::int64_t id =
      store.add_report({.path = "r.png", .category = "race", .score = 3, .threshold = 2});
  constexpr int kDeciders = 6;
  std::atomic<int> won = 0, refused = 0;
  std::vector<std::vector<float>> embeddings;
  for (int i = 0; i < kDeciders; ++i) embeddings.push_back(random_vector(rng, 16));
  std::vector<std::thread> threads;
  for (int i = 0; i < kDeciders; ++i) {
    threads.emplace_back([&, i] {
      const bool defect = i % 2 == 0;
      try {
        store.resolve_report(id,
                             {.resolution = defect ? Resolution::kDefect : Resolution::kFalseAlarm,
                              .defect = defect ? "crack" : "",
                              .by = "decider " + std::to_string(i)},
                             StoredImage{.path = "r.png",
                                         .category = "race",
                                         .split = Split::kAdded,
                                         .anomalous = defect,
                                         .defect = defect ? "crack" : "good",
                                         .embedding = embeddings[i]});
        ++won;
      } catch (const ConflictError&) {
        ++refused;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won, 1);
  EXPECT_EQ(refused, kDeciders - 1);
  EXPECT_EQ(store.image_count("race"), before + 1);
  const auto decided = store.report(id);
  ASSERT_TRUE(decided.has_value());
  std::size_t labelled = 0;
  for (const StoredImage& image : store.images("race")) {
    if (image.split != Split::kAdded) continue;
    ++labelled;
    EXPECT_EQ(image.anomalous, decided->resolution == Resolution::kDefect) << decided->resolved_by;
  }
  EXPECT_EQ(labelled, 1u);
  // An image the store refuses (another dimension): the decision is not recorded either.
  const std::int64_t other =
      store.add_report({.path = "s.png", .category = "race", .score = 3, .threshold = 2});
  EXPECT_THROW(
      store.resolve_report(
          other, {.resolution = Resolution::kFalseAlarm},
          StoredImage{.path = "s.png", .category = "race", .embedding = random_vector(rng, 8)}),
      Error);
  EXPECT_EQ(store.report(other)->status, ReportStatus::kOpen);
  EXPECT_EQ(store.image_count("race"), before + 1);
}

#ifdef PATCHVEC_SOURCE_DIR
// $PATCHVEC_TEST_DB, else what `scripts/pgvector-server.sh url` prints ("" when it is not running).
inline std::string test_server_url() {
  if (const char* url = std::getenv("PATCHVEC_TEST_DB")) return url;
  const std::string command = std::string(PATCHVEC_SOURCE_DIR) + "/scripts/pgvector-server.sh url";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::array<char, 512> buffer{};
  std::string out;
  while (std::fgets(buffer.data(), buffer.size(), pipe)) out += buffer.data();
  ::pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}
#endif

}  // namespace pv::testing
