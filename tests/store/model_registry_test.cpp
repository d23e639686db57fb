// Published model files in a real PostgreSQL (scripts/pgvector-server.sh): revisions, their bytes
// and hashes, and the notifications services follow.
#include <cstring>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/model_registry.h>

#include "store/pg_testing.h"
#include "util/sha256.h"

namespace pv {
namespace {

using ModelRegistryTest = testing::DatabaseTest;

std::vector<std::byte> bytes_of(const std::string& text) {
  std::vector<std::byte> out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

TEST_F(ModelRegistryTest, PublishesRevisionsAndListsTheNewest) {
  const auto registry = ModelRegistry::open(url_);
  EXPECT_TRUE(registry->list().empty());
  // Every byte value, and more than one TOAST chunk: bytea must round-trip exactly.
  std::string first(300000, '\0');
  for (std::size_t i = 0; i < first.size(); ++i) first[i] = static_cast<char>(i * 7 % 256);
  bool added = false;
  const PublishedModel one = registry->publish("tile", bytes_of(first), "tile.pvm", &added);
  EXPECT_TRUE(added);
  EXPECT_EQ(one.category, "tile");
  EXPECT_EQ(one.revision, 1);
  EXPECT_EQ(one.sha256, sha256_hex(bytes_of(first)));
  EXPECT_EQ(one.bytes, 300000);
  EXPECT_EQ(one.source, "tile.pvm");
  EXPECT_EQ(one.created.size(), 20u) << one.created;  // 2026-11-30T09:00:00Z

  // The same bytes again are no new revision.
  const PublishedModel again = registry->publish("tile", bytes_of(first), "copy.pvm", &added);
  EXPECT_FALSE(added);
  EXPECT_EQ(again.revision, 1);
  EXPECT_EQ(again.source, "tile.pvm");

  const PublishedModel two = registry->publish("tile", bytes_of("second"), "tile.pvm", &added);
  EXPECT_TRUE(added);
  EXPECT_EQ(two.revision, 2);
  registry->publish("grid", bytes_of("grid model"), "grid.pvm");
  // Publishing an older file again makes it the newest: revisions only go up.
  EXPECT_EQ(registry->publish("tile", bytes_of(first), "tile.pvm").revision, 3);

  const auto newest = registry->list();
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].category, "grid");
  EXPECT_EQ(newest[0].revision, 1);
  EXPECT_EQ(newest[1].category, "tile");
  EXPECT_EQ(newest[1].revision, 3);
  EXPECT_EQ(registry->list(/*all_revisions=*/true).size(), 4u);

  EXPECT_EQ(registry->content("tile", 1), bytes_of(first));
  EXPECT_EQ(registry->content("tile", 2), bytes_of("second"));
  EXPECT_THROW(registry->publish("tile", {}, "empty.pvm"), Error);
}

TEST_F(ModelRegistryTest, DamagedOrMissingRevisionsAreNamed) {
  const auto registry = ModelRegistry::open(url_);
  registry->publish("tile", bytes_of("a model"), "tile.pvm");
  const auto expect_error = [&](std::int64_t revision, const std::string& words) {
    try {
      registry->content("tile", revision);
      ADD_FAILURE() << "revision " << revision << " was read";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("tile revision " + std::to_string(revision)), std::string::npos)
          << message;
      EXPECT_NE(message.find(words), std::string::npos) << message;
    }
  };
  expect_error(2, "does not exist");
  pg::Connection db(url_);
  db.exec("UPDATE models SET content = 'a modem'::bytea");  // same size, other bytes
  expect_error(1, "damaged");
  // The table refuses what no publisher writes.
  EXPECT_THROW(db.exec("UPDATE models SET sha256 = 'not a hash'"), Error);
}

TEST_F(ModelRegistryTest, ConcurrentPublishersNumberRevisionsWithoutGaps) {
  const auto registry = ModelRegistry::open(url_);
  std::vector<std::thread> publishers;
  for (int t = 0; t < 4; ++t) {
    publishers.emplace_back([&, t] {
      const auto mine = ModelRegistry::open(url_);
      for (int i = 0; i < 5; ++i) {
        mine->publish("tile", bytes_of("model " + std::to_string(t) + "/" + std::to_string(i)),
                      "tile.pvm");
      }
    });
  }
  for (auto& t : publishers) t.join();
  std::set<std::int64_t> revisions;
  for (const PublishedModel& p : registry->list(true)) revisions.insert(p.revision);
  EXPECT_EQ(revisions.size(), 20u);
  EXPECT_EQ(*revisions.begin(), 1);
  EXPECT_EQ(*revisions.rbegin(), 20);
}

TEST_F(ModelRegistryTest, ListenersHearPublicationsAndReconnect) {
  const auto listener = ModelRegistry::open(url_);
  const auto publisher = ModelRegistry::open(url_);
  EXPECT_TRUE(listener->wait_for_publish(std::chrono::milliseconds(0)));  // starts listening
  EXPECT_FALSE(listener->wait_for_publish(std::chrono::milliseconds(100)));
  publisher->publish("tile", bytes_of("one"), "tile.pvm");
  EXPECT_TRUE(listener->wait_for_publish(std::chrono::seconds(10)));
  EXPECT_FALSE(listener->wait_for_publish(std::chrono::milliseconds(100)));
  // The same bytes again: nothing new, nothing said.
  publisher->publish("tile", bytes_of("one"), "tile.pvm");
  EXPECT_FALSE(listener->wait_for_publish(std::chrono::milliseconds(300)));

  // An administrator ends the listening connection: the wait fails, the next one reconnects and
  // says "check" at once (publications may have been missed).
  admin_->exec(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE datname = $1 AND query LIKE 'LISTEN%'",
      {database_});
  bool failed = false;
  for (int i = 0; i < 50 && !failed; ++i) {
    try {
      listener->wait_for_publish(std::chrono::milliseconds(100));
    } catch (const Error&) {
      failed = true;
    }
  }
  EXPECT_TRUE(failed) << "the lost connection went unnoticed";
  EXPECT_TRUE(listener->wait_for_publish(std::chrono::milliseconds(0)));
  publisher->publish("tile", bytes_of("two"), "tile.pvm");
  EXPECT_TRUE(listener->wait_for_publish(std::chrono::seconds(10)));
}

}  // namespace
}  // namespace pv
