// The report spool against a real PostgreSQL that stops taking connections: reports wait on disk
// and are stored once each when the database answers again.
#include <algorithm>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <patchvec/error.h>
#include <patchvec/report_spool.h>
#include <patchvec/store.h>

#include "store/pg_testing.h"
#include "testing.h"
#include "util/clock.h"

namespace pv {
namespace {

class ReportSpoolTest : public testing::DatabaseTest {
 protected:
  // No new connections, and the store's own ended: what a worker sees while no primary answers.
  void take_database_away() {
    admin_->exec("ALTER DATABASE " + database_ + " ALLOW_CONNECTIONS false");
    admin_->exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND "
        "application_name = 'patchvec'",
        {database_});
  }
  void bring_database_back() {
    admin_->exec("ALTER DATABASE " + database_ + " ALLOW_CONNECTIONS true");
  }
  static AnomalyReport report(const std::string& path) {
    return {.path = path, .category = "tile", .score = 5, .threshold = 3};
  }
  testing::TempDir dir_;
};

TEST_F(ReportSpoolTest, ReportsWaitWhileTheDatabaseIsAwayAndAreStoredOnce) {
  auto store = open_postgres_store(url_);
  ReportSpool spool(dir_ / "spool");
  const auto stored = spool.add(*store, report("first.png"));
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(spool.pending(), 0u);

  take_database_away();
  for (const char* name : {"a.png", "b.png", "c.png"}) {
    EXPECT_FALSE(spool.add(*store, report(name)).has_value()) << name;
  }
  EXPECT_EQ(spool.pending(), 3u);
  EXPECT_THROW(store->reports({}), UnavailableError);
  EXPECT_EQ(spool.flush(*store), 0u);  // still away: nothing lost
  EXPECT_EQ(spool.pending(), 3u);

  // A reopened spool (a restarted worker) holds them too.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const std::string back = utc_now();
  bring_database_back();
  ReportSpool reopened(dir_ / "spool");
  EXPECT_EQ(reopened.pending(), 3u);
  EXPECT_EQ(reopened.flush(*store), 3u);
  EXPECT_EQ(reopened.pending(), 0u);
  EXPECT_EQ(reopened.flush(*store), 0u);
  const auto reports = store->reports({.limit = 100});
  ASSERT_EQ(reports.size(), 4u);
  // Newest first, in the order they were found, each with the time it was found (not stored).
  EXPECT_EQ(reports[0].path, "c.png");
  EXPECT_EQ(reports[2].path, "a.png");
  EXPECT_LT(reports[2].created, back);
}

TEST_F(ReportSpoolTest, AFlushCutShortStoresNothingTwice) {
  auto store = open_postgres_store(url_);
  ReportSpool spool(dir_ / "spool");
  take_database_away();
  EXPECT_FALSE(spool.add(*store, report("x.png")).has_value());
  EXPECT_FALSE(spool.add(*store, report("y.png")).has_value());
  bring_database_back();
  // A flush that stored x.png and died before removing its file: the next one stores y.png only.
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_ / "spool")) {
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 2u);
  const std::string text = testing::read_text(files[0]);
  const auto key_at = text.find("\"idempotency_key\":\"");
  ASSERT_NE(key_at, std::string::npos) << text;
  AnomalyReport first = report("x.png");
  first.idempotency_key = text.substr(key_at + 19, 32);
  store->add_report(first);
  EXPECT_EQ(spool.flush(*store), 2u);
  const auto reports = store->reports({.limit = 100});
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].path, "y.png");
  EXPECT_EQ(reports[1].path, "x.png");

  // A file that is no report is set aside, not retried forever.
  testing::write_text(dir_ / "spool" / "00000000000000000001-bad.json", "{not json");
  EXPECT_EQ(spool.flush(*store), 0u);
  EXPECT_EQ(spool.pending(), 0u);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "spool" / "00000000000000000001-bad.json.bad"));
}

// Spool files are input like any other: a forged one (a million matches, another category in its
// matches, a key that is no key) is set aside, and nothing of it reaches the store.
TEST(ReportSpool, ForgedFilesAreSetAside) {
  testing::TempDir dir;
  auto store = open_embedded_store(dir / "store.pvs");
  const auto spooled = [&](const std::string& name, nlohmann::json report) {
    testing::write_text(dir / "spool" / (name + ".json"), report.dump());
  };
  nlohmann::json good = {{"id", 0},
                         {"path", "a.png"},
                         {"category", "tile"},
                         {"score", 5.0},
                         {"threshold", 3.0},
                         {"best_similarity", 0.5},
                         {"created", "2026-12-01T10:00:00Z"},
                         {"matches", nlohmann::json::array()},
                         {"idempotency_key", std::string(32, 'a')}};
  std::filesystem::create_directories(dir / "spool");
  nlohmann::json many = good;
  const nlohmann::json match = {{"id", 1},           {"path", "m.png"},   {"category", "tile"},
                                {"anomalous", true}, {"defect", "crack"}, {"similarity", 0.9}};
  for (int i = 0; i < 200'000; ++i) many["matches"].push_back(match);
  many["idempotency_key"] = std::string(32, 'b');
  spooled("00000000000000000002-many", many);
  nlohmann::json other = good;
  other["matches"] = nlohmann::json::array({match});
  other["matches"][0]["category"] = "grid";
  other["idempotency_key"] = std::string(32, 'c');
  spooled("00000000000000000003-other", other);
  nlohmann::json key = good;
  key["idempotency_key"] = "../../x";
  spooled("00000000000000000004-key", key);
  nlohmann::json time = good;
  time["created"] = "yesterday";
  time["idempotency_key"] = std::string(32, 'd');
  spooled("00000000000000000005-time", time);
  spooled("00000000000000000006-good", good);
  ReportSpool spool(dir / "spool");
  EXPECT_EQ(spool.flush(*store), 1u);
  const auto reports = store->reports({.limit = 100});
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].path, "a.png");
  for (const char* name : {"many", "other", "key", "time"}) {
    bool aside = false;
    for (const auto& entry : std::filesystem::directory_iterator(dir / "spool")) {
      aside |= entry.path().filename().string().find(std::string(name) + ".json.bad") !=
               std::string::npos;
    }
    EXPECT_TRUE(aside) << name;
  }
}

}  // namespace
}  // namespace pv
