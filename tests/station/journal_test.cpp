// The lane's journal: the ledger of what was inspected and every sink's outbox.
#include "station/journal.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <patchvec/error.h>

#include "station/position.h"
#include "testing.h"

namespace pv::testing {
namespace {

using station::Journal;

std::string key(int n) {
  char text[33];
  std::snprintf(text, sizeof text, "%032x", n);
  return text;
}

nlohmann::ordered_json record(int n) {
  return {{"key", key(n)}, {"name", "part" + std::to_string(n) + ".png"}, {"verdict", "normal"}};
}

// The one segment of a journal that has one.
std::filesystem::path segment(const TempDir& dir, int first = 1) {
  char name[40];
  std::snprintf(name, sizeof name, "journal-%012d.jsonl", first);
  return dir / name;
}

TEST(JournalTest, RecordsInOrderAndHoldsTheKeysAcrossReopening) {
  TempDir dir;
  {
    Journal journal(dir.path());
    EXPECT_EQ(journal.size(), 0u);
    EXPECT_EQ(journal.append(record(1)), 1u);
    EXPECT_EQ(journal.append(record(2)), 2u);
    EXPECT_TRUE(journal.contains(key(2)));
    EXPECT_FALSE(journal.contains(key(3)));
    const auto line = nlohmann::json::parse(journal.read(2));
    EXPECT_EQ(line["seq"], 2);
    EXPECT_EQ(line["name"], "part2.png");
    EXPECT_THROW(journal.append(record(2)), Error);  // a key is recorded once
    EXPECT_THROW(journal.read(3), Error);
  }
  Journal again(dir.path());
  EXPECT_EQ(again.size(), 2u);
  EXPECT_TRUE(again.contains(key(1)));
  EXPECT_EQ(again.append(record(3)), 3u);
  EXPECT_EQ(nlohmann::json::parse(again.read(1))["key"], key(1));
}

TEST(JournalTest, DropsARecordCutShortByACrash) {
  TempDir dir;
  {
    Journal journal(dir.path());
    journal.append(record(1));
    journal.append(record(2));
  }
  const std::string whole = read_text(segment(dir));
  write_text(segment(dir), whole + R"({"seq":3,"key":")");  // kill -9 mid-write
  Journal journal(dir.path());
  EXPECT_EQ(journal.size(), 2u);
  EXPECT_FALSE(journal.contains(key(3)));
  EXPECT_EQ(read_text(segment(dir)), whole);
  EXPECT_EQ(journal.append(record(3)), 3u);
  EXPECT_EQ(Journal(dir.path()).size(), 3u);
}

TEST(JournalTest, RefusesAJournalChangedInTheMiddleNamingTheLine) {
  TempDir dir;
  const auto refused = [&](const std::string& text, const std::string& expected) {
    write_text(segment(dir), text);
    try {
      Journal journal(dir.path());
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("journal-000000000001.jsonl"), std::string::npos)
          << e.what();
    }
  };
  const std::string first = R"({"seq":1,"key":")" + key(1) + "\"}\n";
  refused(first + "not json\n", "line 2 is not a JSON object");
  refused(first + R"({"seq":5,"key":")" + key(2) + "\"}\n", "line 2 does not carry \"seq\": 2");
  refused(first + R"({"seq":2,"key":"NOT-HEX"})" + "\n", "line 2 does not carry a \"key\"");
  refused(first + R"({"seq":2,"key":")" + key(1) + "\"}\n", "a second time");
  refused(std::string(station::kMaxRecordBytes + 10, ' ') + "\n", "longer than a record");
}

TEST(JournalTest, SegmentsAreReadAcrossAndTrimmedOnceDeliveredAndOld) {
  TempDir dir;
  const auto far_future = std::filesystem::file_time_type::clock::now() + std::chrono::hours(1);
  {
    Journal journal(dir.path(), {.segment_bytes = 200});  // about two records a segment
    for (int n = 1; n <= 7; ++n) EXPECT_EQ(journal.append(record(n)), static_cast<unsigned>(n));
    EXPECT_GE(journal.segments(), 3u);
    for (int n = 1; n <= 7; ++n) {
      EXPECT_EQ(nlohmann::json::parse(journal.read(static_cast<unsigned>(n)))["key"], key(n));
    }
  }
  Journal journal(dir.path(), {.segment_bytes = 200});
  EXPECT_EQ(journal.size(), 7u);
  EXPECT_EQ(journal.first(), 1u);
  // Not delivered, or not old enough: nothing goes.
  EXPECT_EQ(journal.trim(0, far_future), 0u);
  EXPECT_EQ(journal.trim(7, std::filesystem::file_time_type::clock::now() - std::chrono::hours(1)),
            0u);
  // Delivered up to 3: the segments wholly at or below it go, their keys forgotten.
  const std::uint64_t dropped = journal.trim(3, far_future);
  EXPECT_GE(dropped, 2u);
  EXPECT_LE(dropped, 3u);
  EXPECT_EQ(journal.first(), dropped + 1);
  EXPECT_FALSE(journal.contains(key(1)));
  EXPECT_TRUE(journal.contains(key(7)));
  EXPECT_THROW(journal.read(1), Error);
  EXPECT_EQ(nlohmann::json::parse(journal.read(dropped + 1))["seq"], dropped + 1);
  // Everything delivered: all but the segment appended to go; numbering goes on.
  journal.trim(7, far_future);
  EXPECT_EQ(journal.segments(), 1u);
  EXPECT_EQ(journal.append(record(8)), 8u);
  Journal reopened(dir.path(), {.segment_bytes = 200});
  EXPECT_EQ(reopened.size(), 8u);
  EXPECT_TRUE(reopened.contains(key(8)));
}

TEST(JournalTest, RefusesAMissingSegment) {
  TempDir dir;
  {
    Journal journal(dir.path(), {.segment_bytes = 50});  // a segment per record
    for (int n = 1; n <= 4; ++n) journal.append(record(n));
  }
  std::vector<std::filesystem::path> segments;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    segments.push_back(entry.path());
  }
  std::sort(segments.begin(), segments.end());
  ASSERT_GE(segments.size(), 3u);
  std::filesystem::remove(segments[1]);
  try {
    Journal journal(dir.path());
    ADD_FAILURE() << "a gap was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a segment is missing"), std::string::npos) << e.what();
  }
}

TEST(JournalTest, WaitBeyondWakesOnAnAppend) {
  TempDir dir;
  Journal journal(dir.path());
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    journal.append(record(1));
  });
  EXPECT_EQ(journal.wait_beyond(0, std::chrono::seconds(10)), 1u);
  writer.join();
  EXPECT_EQ(journal.wait_beyond(1, std::chrono::milliseconds(1)), 1u);
}

TEST(JournalTest, ImageKeysNameTheLaneTheNameAndTheBytes) {
  const std::vector<std::byte> a{std::byte{1}, std::byte{2}};
  const std::vector<std::byte> b{std::byte{1}, std::byte{3}};
  const std::string k = station::image_key("top", "p.png", a);
  EXPECT_EQ(k.size(), 32u);
  EXPECT_EQ(k, station::image_key("top", "p.png", a));
  EXPECT_NE(k, station::image_key("top", "p.png", b));
  EXPECT_NE(k, station::image_key("side", "p.png", a));
  EXPECT_NE(k, station::image_key("top", "q.png", a));
  EXPECT_NE(station::image_key("a", "bc", a), station::image_key("ab", "c", a));
}

TEST(SinkPositionTest, MovesOnlyForwardAndSurvivesAReopening) {
  TempDir dir;
  {
    station::SinkPosition position(dir / "mqtt-0.position", 10);
    EXPECT_EQ(position.delivered(), 0u);
    position.advance(4);
    position.advance(2);
    EXPECT_EQ(position.delivered(), 4u);
    position.save();
  }
  EXPECT_EQ(station::SinkPosition(dir / "mqtt-0.position", 10).delivered(), 4u);
  EXPECT_THROW(station::SinkPosition(dir / "mqtt-0.position", 3), Error);  // journal replaced
  write_text(dir / "mqtt-0.position", "four\n");
  EXPECT_THROW(station::SinkPosition(dir / "mqtt-0.position", 10), Error);
}

}  // namespace
}  // namespace pv::testing
