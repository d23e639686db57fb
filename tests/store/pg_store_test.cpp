// The PostgreSQL + pgvector store against a real server (scripts/pgvector-server.sh, started by
// CTest's pgvector fixture): the conformance suite (store/conformance.h), and what only a
// database has: its schema and migrations, transactions under killed connections, connections in
// parallel, HNSW. Every test works in a database of its own.
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

#include "store/conformance.h"
#include "store/pg_testing.h"
#include "store/postgres.h"
#include "store/store_testing.h"
#include "testing.h"

namespace pv::testing {

// A database of its own per test, named after it; open() is another connection's view.
struct PostgresBackend {
  testing::ScratchDatabase database{[] {
    std::string name = std::string("conformance_") +
                       ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    return name;
  }()};
  std::unique_ptr<VectorStore> open() const { return open_postgres_store(database.url()); }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreConformance, PostgresBackend);

}  // namespace pv::testing

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
            "7");
  EXPECT_EQ(db.exec("SELECT value FROM patchvec_meta WHERE key = 'dimension'").text(0, 0), "8");
  EXPECT_EQ(db.exec("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'images'::regclass AND attname = 'embedding'")
                .text(0, 0),
            "vector(8)");
  for (const char* table : {"categories", "images", "reports"}) {
    EXPECT_EQ(db.exec("SELECT to_regclass($1) IS NOT NULL", {std::string(table)}).text(0, 0), "t")
        << table;
  }
  // Version 6 dropped the memory-bank patches nothing read (sql/006_drop_patches.sql).
  EXPECT_EQ(db.exec("SELECT to_regclass('patches') IS NULL").text(0, 0), "t");
  auto again = open_postgres_store(url_);  // migration is idempotent
  EXPECT_EQ(again->image_count("tile"), 10u);
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
  EXPECT_EQ(store->image(1)->split, Split::kTrain);
  EXPECT_EQ(store->image(2)->split, Split::kAdded);
  store->replace_dataset("tile", {});
  EXPECT_EQ(store->image_count("tile"), 1u);  // the labelled one survived the re-index
  // The old report is kept, open, and can be resolved.
  const auto old = store->reports({.limit = 10});
  ASSERT_EQ(old.size(), 1u);
  EXPECT_EQ(old[0].path, "old.png");
  EXPECT_EQ(old[0].status, ReportStatus::kOpen);
  EXPECT_EQ(store->resolve_report(old[0].id, {.resolution = Resolution::kFalseAlarm}, std::nullopt)
                .report.status,
            ReportStatus::kResolved);
  pg::Connection db(url_);
  EXPECT_EQ(db.exec("SELECT value FROM patchvec_meta WHERE key = 'schema_version'").text(0, 0),
            "7");
  EXPECT_EQ(db.exec("SELECT to_regclass('patches') IS NULL").text(0, 0), "t");
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

TEST_F(PostgresStore, AConnectionKilledDuringTheCopyLeavesThePreviousImages) {
  auto store = open_postgres_store(url_);
  const std::size_t dim = 1536;
  std::mt19937 rng(5);
  store->replace_dataset("tile", random_images(rng, "tile", 100, dim, "old/"));
  // 30,000 images of 1536 floats (184 MB of COPY data): long enough to be killed in the middle.
  std::vector<StoredImage> many(30000, StoredImage{.path = "new.png",
                                                   .category = "tile",
                                                   .embedding = std::vector<float>(dim, 0.5f)});
  std::atomic<bool> killed = false;
  std::thread killer([&] {
    pg::Connection watcher(base_url_);
    for (int attempt = 0; attempt < 2000 && !killed; ++attempt) {
      const pg::Result r = watcher.exec(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND "
          "query LIKE 'COPY images%' AND state = 'active'",
          {database_});
      killed = r.rows() > 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  EXPECT_THROW(store->replace_dataset("tile", many), Error);
  killer.join();
  ASSERT_TRUE(killed) << "the COPY finished before it could be killed";
  pg::Connection db(url_);
  EXPECT_EQ(count_rows(db, "images"), 100);
  EXPECT_EQ(db.exec("SELECT count(*) FROM images WHERE path LIKE 'old/%'").text(0, 0), "100");
}

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
