// The PostgreSQL + pgvector store against a real server (scripts/pgvector-server.sh, started by
// CTest's pgvector fixture). Every test works in a database of its own.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/store.h>

#include "store/pg_testing.h"
#include "store/postgres.h"
#include "store/store_testing.h"
#include "testing.h"

namespace pv {
namespace {

using PostgresStore = testing::DatabaseTest;

using testing::cosine;
using testing::random_vector;

std::vector<StoredImage> random_images(std::mt19937& rng, const std::string& category, int count,
                                       std::size_t dim, const std::string& prefix = "") {
  return testing::random_images(rng, category, count, dim, prefix, /*anomalous_every=*/5);
}

std::vector<std::string> paths_of(const std::vector<Match>& matches) {
  std::vector<std::string> out;
  for (const Match& m : matches) out.push_back(m.image.path);
  return out;
}

int count_rows(pg::Connection& db, const std::string& table) {
  return std::stoi(db.exec("SELECT count(*) FROM " + table).text(0, 0));
}

TEST_F(PostgresStore, CreatesTheSchemaInAnEmptyDatabaseAndReopensIt) {
  {
    auto store = open_postgres_store(url_);
    EXPECT_EQ(store->image_count(), 0u);
    EXPECT_TRUE(store->nearest(std::vector<float>(8, 1.0f), 5).empty());
    std::mt19937 rng(1);
    store->replace_dataset("tile", random_images(rng, "tile", 10, 8));
  }
  pg::Connection db(url_);
  EXPECT_EQ(db.exec("SELECT value FROM patchvec_meta WHERE key = 'schema_version'").text(0, 0),
            "5");
  EXPECT_EQ(db.exec("SELECT value FROM patchvec_meta WHERE key = 'dimension'").text(0, 0), "8");
  EXPECT_EQ(db.exec("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'images'::regclass AND attname = 'embedding'")
                .text(0, 0),
            "vector(8)");
  for (const char* table : {"categories", "images", "patches", "reports"}) {
    EXPECT_EQ(db.exec("SELECT to_regclass($1) IS NOT NULL", {std::string(table)}).text(0, 0), "t")
        << table;
  }
  auto again = open_postgres_store(url_);  // migration is idempotent
  EXPECT_EQ(again->image_count("tile"), 10u);
}

TEST_F(PostgresStore, ReindexingKeepsAddedImages) {
  std::mt19937 rng(12);
  auto store = open_postgres_store(url_);
  store->replace_dataset("tile", random_images(rng, "tile", 8, 6));
  const std::int64_t added = store->add_image({.path = "labelled/oil.png",
                                               .category = "tile",
                                               .split = Split::kAdded,
                                               .anomalous = true,
                                               .defect = "oil",
                                               .embedding = random_vector(rng, 6)});
  store->replace_dataset("tile", random_images(rng, "tile", 7, 6));
  EXPECT_EQ(store->image_count("tile"), 8u);  // 7 from the dataset and the added one
  const auto kept = store->image(added);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->defect, "oil");
  EXPECT_EQ(kept->source, kSourceAdded);
  store->replace_dataset("tile", {});  // an empty dataset still keeps it
  EXPECT_EQ(store->image_count("tile"), 1u);
}

TEST_F(PostgresStore, ReportsAreResolvedOnce) {
  auto store = open_postgres_store(url_);
  testing::check_report_lifecycle(*store);
}

// A store opened on an empty database (a service started before the first index) sees what
// another process loads afterwards.
TEST_F(PostgresStore, AStoreOpenedBeforeTheFirstLoadSeesIt) {
  auto early = open_postgres_store(url_, /*exact=*/true);
  EXPECT_EQ(early->image_count(), 0u);
  std::mt19937 rng(9);
  const auto images = random_images(rng, "tile", 10, 8);
  open_postgres_store(url_)->replace_dataset("tile", images);
  EXPECT_EQ(early->image_count("tile"), 10u);
  const auto match = early->nearest(images[3].embedding, 1, {.category = "tile"});
  ASSERT_EQ(match.size(), 1u);
  EXPECT_EQ(match[0].image.path, images[3].path);
}

TEST_F(PostgresStore, RacingDecisionsStoreOnlyTheWinnersImage) {
  auto store = open_postgres_store(url_);
  testing::check_racing_decisions(*store);
}

TEST_F(PostgresStore, AReportSentTwiceIsStoredOnce) {
  auto store = open_postgres_store(url_);
  testing::check_idempotent_reports(*store);
}

TEST_F(PostgresStore, MigratesAVersion1Schema) {
  {  // what patchvec 0.1 wrote: no source column, added images told by their split
    pg::Connection db(url_);
    db.exec("CREATE TABLE patchvec_meta (key text PRIMARY KEY, value text NOT NULL)");
    db.exec("INSERT INTO patchvec_meta VALUES ('schema_version', '1'), ('dimension', '3')");
    db.exec(
        "CREATE TABLE categories (name text PRIMARY KEY, indexed_at timestamptz NOT NULL "
        "DEFAULT now())");
    db.exec(
        "CREATE TABLE reports (id bigserial PRIMARY KEY, path text NOT NULL, category text "
        "NOT NULL, score real NOT NULL, threshold real, best_similarity double precision NOT "
        "NULL, created timestamptz NOT NULL DEFAULT now(), matches jsonb NOT NULL)");
    db.exec(
        "CREATE TABLE images (id bigserial PRIMARY KEY, path text NOT NULL, category text NOT "
        "NULL, split text NOT NULL, anomalous boolean NOT NULL, defect text NOT NULL, score "
        "real, verdict text NOT NULL DEFAULT '', embedding vector(3) NOT NULL)");
    db.exec(
        "CREATE TABLE patches (id bigserial PRIMARY KEY, category text NOT NULL, embedding "
        "vector(3) NOT NULL)");
    db.exec(
        "INSERT INTO images (path, category, split, anomalous, defect, embedding) VALUES "
        "('a.png', 'tile', 'train', false, 'good', '[1,0,0]'), "
        "('b.png', 'tile', 'added', true, 'oil', '[0,1,0]')");
  }
  {
    pg::Connection db(url_);
    db.exec(
        "INSERT INTO reports (path, category, score, threshold, best_similarity, matches) "
        "VALUES ('old.png', 'tile', 3, 2, 0.5, '[]')");
  }
  auto store = open_postgres_store(url_);
  EXPECT_EQ(store->image(1)->source, kSourceDataset);
  EXPECT_EQ(store->image(2)->source, kSourceAdded);
  store->replace_dataset("tile", {});
  EXPECT_EQ(store->image_count("tile"), 1u);  // the labelled one survived the re-index
  // The old report is kept, open, and can be resolved.
  const auto old = store->reports({.limit = 10});
  ASSERT_EQ(old.size(), 1u);
  EXPECT_EQ(old[0].path, "old.png");
  EXPECT_EQ(old[0].status, "open");
  EXPECT_EQ(
      store->resolve_report(old[0].id, {.resolution = kFalseAlarm}, std::nullopt).report.status,
      "resolved");
  pg::Connection db(url_);
  EXPECT_EQ(db.exec("SELECT value FROM patchvec_meta WHERE key = 'schema_version'").text(0, 0),
            "5");
}

TEST_F(PostgresStore, ReindexingReplacesNeverDuplicates) {
  std::mt19937 rng(2);
  auto store = open_postgres_store(url_);
  store->replace_dataset("tile", random_images(rng, "tile", 40, 16));
  store->replace_dataset("grid", random_images(rng, "grid", 7, 16));
  store->replace_dataset("tile", random_images(rng, "tile", 25, 16));
  store->replace_dataset("tile", random_images(rng, "tile", 25, 16));
  EXPECT_EQ(store->image_count("tile"), 25u);
  EXPECT_EQ(store->image_count("grid"), 7u);
  const std::vector<float> bank(16 * 100, 0.5f);
  EXPECT_EQ(store->replace_patches("tile", bank, 16), 100u);
  EXPECT_EQ(store->replace_patches("tile", std::span(bank).first(16 * 60), 16), 60u);
  pg::Connection db(url_);
  EXPECT_EQ(count_rows(db, "patches"), 60);
}

TEST_F(PostgresStore, AFailedLoadLeavesThePreviousContents) {
  std::mt19937 rng(3);
  auto store = open_postgres_store(url_);
  const auto before = random_images(rng, "tile", 30, 16, "old/");
  store->replace_dataset("tile", before);
  // Halfway through the new rows, one that the server rejects (pgvector refuses NaN).
  auto broken = random_images(rng, "tile", 40, 16, "new/");
  broken[20].embedding[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(store->replace_dataset("tile", broken), Error);
  EXPECT_EQ(store->image_count("tile"), 30u);
  const auto match = store->nearest(before[0].embedding, 1, {.category = "tile"});
  ASSERT_EQ(match.size(), 1u);
  EXPECT_EQ(match[0].image.path, "old/tile/0.png");

  // The connection killed by the server before a load: an error, and nothing changes.
  const auto victim = open_postgres_store(url_);
  victim->build_indexes();  // its connection for writes is open
  admin_->exec(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND "
      "application_name = 'patchvec'",
      {database_});
  EXPECT_THROW(victim->replace_dataset("tile", random_images(rng, "tile", 5, 16)), Error);
  EXPECT_EQ(open_postgres_store(url_)->image_count("tile"), 30u);
}

TEST_F(PostgresStore, AConnectionKilledDuringTheCopyLeavesThePreviousBank) {
  auto store = open_postgres_store(url_);
  const std::size_t dim = 1536;
  const std::vector<float> old_bank(dim * 100, 0.25f);
  store->replace_patches("tile", old_bank, dim);
  // 30,000 x 1536 floats (184 MB of COPY data): long enough to be killed in the middle.
  const std::vector<float> new_bank(dim * 30000, 0.5f);
  std::atomic<bool> killed = false;
  std::thread killer([&] {
    pg::Connection watcher(base_url_);
    for (int attempt = 0; attempt < 2000 && !killed; ++attempt) {
      const pg::Result r = watcher.exec(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND "
          "query LIKE 'COPY patches%' AND state = 'active'",
          {database_});
      killed = r.rows() > 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  EXPECT_THROW(store->replace_patches("tile", new_bank, dim), Error);
  killer.join();
  ASSERT_TRUE(killed) << "the COPY finished before it could be killed";
  pg::Connection db(url_);
  EXPECT_EQ(count_rows(db, "patches"), 100);
  EXPECT_EQ(db.exec("SELECT count(*) FROM patches WHERE (embedding::real[])[1] = 0.25").text(0, 0),
            "100");
}

// Calls from many threads run on connections of their own (up to 4 for reads and 4 for writes),
// and answer as they do alone.
TEST_F(PostgresStore, ConcurrentCallsRunOnSeveralConnections) {
  std::mt19937 rng(5);
  const auto images = random_images(rng, "tile", 200, 32);
  auto store = open_postgres_store(url_, /*exact=*/true);
  store->replace_dataset("tile", images);
  std::vector<std::vector<Match>> alone;
  for (std::size_t q = 0; q < 16; ++q) alone.push_back(store->nearest(images[q].embedding, 5, {}));
  std::vector<std::thread> threads;
  std::atomic<int> same = 0, asked = 0;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t q = static_cast<std::size_t>(t); q < 16; q += 4) {
        const auto matches = store->nearest(images[q].embedding, 5, {});
        bool equal = matches.size() == alone[q].size();
        for (std::size_t i = 0; equal && i < matches.size(); ++i) {
          equal = matches[i].image.id == alone[q][i].image.id;
        }
        same += equal;
        ++asked;
      }
      store->add_report({.path = "r" + std::to_string(t), .category = "tile"});
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(asked, 28);  // threads 0-3 ask 4 queries each, 4-7 three
  EXPECT_EQ(same, asked);
  EXPECT_EQ(store->reports({.category = "tile"}).size(), 8u);
  const pg::Result open = admin_->exec(
      "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'patchvec'",
      {database_});
  const int connections = std::stoi(open.text(0, 0));
  EXPECT_GE(connections, 2);
  EXPECT_LE(connections, 8);
}

TEST_F(PostgresStore, ExactTopTenIsTheBruteForceRankingAndTheEmbeddedStores) {
  std::mt19937 rng(4);
  const auto images = random_images(rng, "leather", 400, 96);
  auto pg_store = open_postgres_store(url_, /*exact=*/true);
  pg_store->replace_dataset("leather", images);
  testing::TempDir dir;
  auto embedded = open_embedded_store(dir / "store.pvs");
  embedded->replace_dataset("leather", images);
  for (int q = 0; q < 10; ++q) {
    const std::vector<float> query = random_vector(rng, 96);
    for (const std::optional<bool> label : {std::optional<bool>(), std::optional(false)}) {
      const MatchFilter filter{.category = "leather", .anomalous = label};
      std::vector<std::pair<double, std::string>> expected;
      for (const StoredImage& image : images) {
        if (!label || image.anomalous == *label) {
          expected.emplace_back(cosine(query, image.embedding), image.path);
        }
      }
      std::sort(expected.begin(), expected.end(), std::greater<>());
      expected.resize(10);
      const auto from_pg = pg_store->nearest(query, 10, filter);
      ASSERT_EQ(from_pg.size(), 10u);
      for (std::size_t i = 0; i < 10; ++i) {
        EXPECT_EQ(from_pg[i].image.path, expected[i].second) << "rank " << i;
        EXPECT_NEAR(from_pg[i].similarity, expected[i].first, 1e-5);
      }
      EXPECT_EQ(paths_of(from_pg), paths_of(embedded->nearest(query, 10, filter)));
    }
  }
}

TEST_F(PostgresStore, HnswRecallAtTenIsAtLeast95Percent) {
  std::mt19937 rng(5);
  // Clustered data, as image embeddings are: 40 centres, points scattered around them.
  std::vector<std::vector<float>> centres;
  for (int c = 0; c < 40; ++c) centres.push_back(random_vector(rng, 128));
  std::vector<StoredImage> images;
  std::normal_distribution<float> noise(0.0f, 0.6f);
  for (int i = 0; i < 3000; ++i) {
    std::vector<float> v = centres[i % centres.size()];
    for (float& x : v) x += noise(rng);
    images.push_back({.path = std::to_string(i), .category = "grid", .embedding = v});
  }
  auto approximate = open_postgres_store(url_);
  approximate->replace_dataset("grid", images);
  EXPECT_GT(approximate->build_indexes(), 0.0);
  auto exact = open_postgres_store(url_, /*exact=*/true);
  std::size_t found = 0, total = 0;
  for (int q = 0; q < 50; ++q) {
    std::vector<float> query = centres[q % centres.size()];
    for (float& x : query) x += noise(rng);
    const auto truth = paths_of(exact->nearest(query, 10, {.category = "grid"}));
    const auto approx = paths_of(approximate->nearest(query, 10, {.category = "grid"}));
    const std::set<std::string> truth_set(truth.begin(), truth.end());
    for (const auto& p : approx) found += truth_set.count(p);
    total += truth.size();
  }
  const double recall = double(found) / total;
  RecordProperty("recall_at_10", std::to_string(recall));
  EXPECT_GE(recall, 0.95);
  pg::Connection db(url_);
  EXPECT_EQ(db.exec("SELECT count(*) FROM pg_indexes WHERE indexname = 'images_embedding_hnsw'")
                .text(0, 0),
            "1");
}

TEST_F(PostgresStore, ReportsAndAddedAnomalies) {
  auto store = open_postgres_store(url_);
  const std::vector<float> v = {1, 2, 3, 4};
  const std::int64_t id = store->add_image({.path = "fake/oil.png",
                                            .category = "tile",
                                            .split = Split::kAdded,
                                            .anomalous = true,
                                            .defect = "oil",
                                            .embedding = v});
  const auto stored = store->image(id);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->embedding, v);
  EXPECT_EQ(stored->split, Split::kAdded);
  const auto matches = store->nearest(v, 3, {.category = "tile", .anomalous = true});
  ASSERT_EQ(matches.size(), 1u);
  EXPECT_NEAR(matches[0].similarity, 1.0, 1e-6);
  const std::int64_t first = store->add_report({.path = "q1.png",
                                                .category = "tile",
                                                .score = 3,
                                                .threshold = 2,
                                                .best_similarity = 0.5,
                                                .matches = matches});
  store->add_report({.path = "q2.png", .category = "grid", .score = 4, .threshold = 1});
  const auto reports = store->reports({.limit = 10});
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].path, "q2.png");
  EXPECT_EQ(reports[1].id, first);
  EXPECT_EQ(reports[1].matches.at(0).image.defect, "oil");
  EXPECT_EQ(reports[1].created.size(), 20u);  // 2026-11-28T21:04:05Z
  EXPECT_EQ(store->reports({.category = "tile", .limit = 10}).size(), 1u);
  EXPECT_EQ(store->reports({.since = "2000-01-01", .limit = 10}).size(), 2u);
  EXPECT_EQ(store->reports({.since = "2999-01-01T00:00:00", .limit = 10}).size(), 0u);
}

TEST_F(PostgresStore, DimensionMismatchIsOneClearError) {
  auto store = open_postgres_store(url_);
  store->add_image({.path = "a", .category = "tile", .embedding = {1, 2, 3}});
  try {
    store->add_image({.path = "b", .category = "tile", .embedding = {1, 2}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3-dimensional embeddings, got 2"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(store->nearest(std::vector<float>{1, 2}, 3), Error);
}

TEST_F(PostgresStore, BadConnectionsAreClearErrors) {
  const auto expect_error = [](const std::string& url, const std::string& words) {
    try {
      open_postgres_store(url);
      FAIL() << "expected an error for " << url;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(words), std::string::npos) << message;
      EXPECT_EQ(message.find("wrong-password"), std::string::npos)
          << "password leaked: " << message;
    }
  };
  expect_error("postgresql://patchvec:patchvec@127.0.0.1:1/patchvec", "cannot connect");
  std::string wrong = url_;
  wrong.replace(wrong.find(":patchvec@"), 10, ":wrong-password@");
  expect_error(wrong, "password authentication failed");
  expect_error(testing::with_database(base_url_, "no_such_database"), "does not exist");
}

class PostgresWithoutVector : public testing::DatabaseTest {
  std::string template_clause() const override { return " TEMPLATE template0"; }
};

TEST_F(PostgresWithoutVector, AMissingExtensionIsNamed) {
  try {
    open_postgres_store(url_);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CREATE EXTENSION vector"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pv
