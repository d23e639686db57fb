// The hot folder: complete files only, each offered once, moved on without overwriting anything.
#include "station/hot_folder.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <patchvec/error.h>

#include "testing.h"

namespace pv::testing {
namespace {

using namespace std::chrono_literals;
using station::HotFolder;

// Every name the folder offers within `wait`.
std::vector<std::string> drain(HotFolder& folder, std::chrono::milliseconds wait = 300ms) {
  std::vector<std::string> names;
  while (const auto name = folder.next(wait)) names.push_back(*name);
  return names;
}

TEST(HotFolderTest, OffersTheFilesThereAtTheStartThenNewOnesOnce) {
  TempDir dir;
  write_text(dir / "b.png", "b");
  write_text(dir / ".hidden.png", "h");
  write_text(dir / "c.png.part", "c");
  std::filesystem::create_directories(dir / "done");
  HotFolder folder({.dir = dir.path()});
  EXPECT_EQ(drain(folder), std::vector<std::string>{"b.png"});
  write_text(dir / "d.png", "d");  // closed after writing
  write_text(dir / "e.png.part", "e");
  std::filesystem::rename(dir / "e.png.part", dir / "e.png");  // renamed in
  EXPECT_EQ(drain(folder), (std::vector<std::string>{"d.png", "e.png"}));
  EXPECT_TRUE(drain(folder, 50ms).empty());
}

TEST(HotFolderTest, AFileStillBeingWrittenIsNotTakenUntilItIsClosed) {
  TempDir dir;
  const int fd = ::open((dir / "half.png").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "half", 4), 4);
  HotFolder folder({.dir = dir.path()});  // there at the start, but open for writing
  EXPECT_TRUE(drain(folder).empty());
  ASSERT_EQ(::write(fd, " and the rest", 13), 13);
  ::close(fd);
  EXPECT_EQ(drain(folder), std::vector<std::string>{"half.png"});
}

TEST(HotFolderTest, RetriesLater) {
  TempDir dir;
  write_text(dir / "a.png", "a");
  HotFolder folder({.dir = dir.path()});
  EXPECT_EQ(drain(folder, 10ms), std::vector<std::string>{"a.png"});
  folder.retry_later("a.png", 100ms);
  EXPECT_FALSE(folder.next(10ms));
  EXPECT_EQ(folder.next(1000ms).value_or(""), "a.png");
}

TEST(HotFolderTest, MovesToDoneOrFailedWithoutOverwritingAnything) {
  TempDir dir;
  HotFolder folder({.dir = dir.path()});
  write_text(dir / "done/a.png", "an earlier a.png, kept by the user");
  write_text(dir / "a.png", "a");
  const auto done = folder.destination("a.png", false);
  EXPECT_EQ(done, dir / "done/a.2.png");
  folder.finish("a.png", done, false, "");
  EXPECT_EQ(read_text(dir / "done/a.2.png"), "a");
  EXPECT_EQ(read_text(dir / "done/a.png"), "an earlier a.png, kept by the user");

  write_text(dir / "b.png", "not an image");
  const auto failed = folder.destination("b.png", true);
  EXPECT_EQ(failed, dir / "failed/b.png");
  folder.finish("b.png", failed, true, "not an image: no known signature");
  EXPECT_FALSE(std::filesystem::exists(dir / "b.png"));
  EXPECT_EQ(read_text(dir / "failed/b.png.reason"), "not an image: no known signature\n");

  // A destination that appeared in between is refused, not replaced.
  write_text(dir / "c.png", "c");
  const auto target = folder.destination("c.png", false);
  write_text(target, "appeared");
  EXPECT_THROW(folder.finish("c.png", target, false, ""), Error);
  EXPECT_EQ(read_text(target), "appeared");
  EXPECT_EQ(read_text(dir / "c.png"), "c");
}

TEST(HotFolderTest, KeepsOrDeletesAsConfigured) {
  TempDir dir;
  write_text(dir / "a.png", "a");
  HotFolder keep({.dir = dir.path(), .after = AfterInspection::kKeep});
  keep.finish("a.png", keep.destination("a.png", false), false, "");
  EXPECT_TRUE(std::filesystem::exists(dir / "a.png"));
  HotFolder remove({.dir = dir.path(), .after = AfterInspection::kDelete});
  EXPECT_TRUE(remove.destination("a.png", false).empty());
  remove.finish("a.png", {}, false, "");
  EXPECT_FALSE(std::filesystem::exists(dir / "a.png"));
  // A file that was no image is not deleted: failed/ keeps it with its reason.
  write_text(dir / "b.png", "junk");
  const auto failed = remove.destination("b.png", true);
  EXPECT_EQ(failed, dir / "failed/b.png");
  remove.finish("b.png", failed, true, "not an image");
  EXPECT_EQ(read_text(dir / "failed/b.png"), "junk");
}

TEST(HotFolderTest, IgnoredNames) {
  for (const char* name : {".a.png", "a.png.part", "a.tmp", "a.png.reason", ""}) {
    EXPECT_TRUE(station::ignored_name(name)) << name;
  }
  EXPECT_FALSE(station::ignored_name("a.png"));
}

}  // namespace
}  // namespace pv::testing
