// The evidence archive: a folder per kept result, written whole; retention by age and by size
// that touches nothing but day folders.
#include "station/archive.h"

#include <gtest/gtest.h>

#include "testing.h"

namespace pv::testing {
namespace {

std::string day(int days_ago) {
  const auto t = std::chrono::system_clock::now() - std::chrono::hours(24) * days_ago;
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", &parts);
  return text;
}

TEST(ArchiveTest, KeepsTheImageAndTheResultInADayFolder) {
  TempDir dir;
  station::Archive archive({.dir = dir.path()}, "top");
  EXPECT_TRUE(archive.wants("anomalous"));
  EXPECT_TRUE(archive.wants("error"));
  EXPECT_FALSE(archive.wants("normal"));
  EXPECT_TRUE(station::Archive({.dir = dir.path(), .all = true}, "top").wants("normal"));
  const std::string bytes = "not an image";
  const auto folder = archive.keep(7, "part 1.png", std::as_bytes(std::span(bytes)), nullptr,
                                   {{"verdict", "error"}}, std::chrono::system_clock::now());
  EXPECT_EQ(folder, dir / day(0) / "top" / "7-part 1");
  EXPECT_EQ(read_text(folder / "part 1.png"), bytes);
  const auto result = nlohmann::json::parse(read_text(folder / "result.json"));
  EXPECT_EQ(result["seq"], 7);
  EXPECT_EQ(result["evidence"], folder.string());
  EXPECT_EQ(result["verdict"], "error");
}

TEST(ArchiveTest, RetentionDeletesOldDaysThenTheOldestWhileTooLarge) {
  TempDir dir;
  for (const int age : {40, 3, 2, 0}) {
    write_text(dir / day(age) / "top" / "1-a" / "a.png", std::string(1000, 'x'));
  }
  write_text(dir / "notes" / "keep.txt", "the user's");  // not a day folder: never touched
  station::Archive archive({.dir = dir.path(), .max_age_days = 30, .max_bytes = 1500}, "top");
  archive.enforce_retention(true);
  EXPECT_FALSE(std::filesystem::exists(dir / day(40)));  // too old
  EXPECT_FALSE(std::filesystem::exists(dir / day(3)));   // the oldest, while over 1500 bytes
  EXPECT_FALSE(std::filesystem::exists(dir / day(2)));
  EXPECT_TRUE(std::filesystem::exists(dir / day(0)));  // today's stays, whatever its size
  EXPECT_EQ(read_text(dir / "notes" / "keep.txt"), "the user's");
}

}  // namespace
}  // namespace pv::testing
