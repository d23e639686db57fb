#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/files.h>

#include "testing.h"

namespace pv {
namespace {

std::size_t files_in(const std::filesystem::path& dir) {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir), {}));
}

TEST(AtomicFile, CommitReplacesTheTarget) {
  testing::TempDir dir;
  testing::write_text(dir / "model", "old");
  {
    AtomicFile file(dir / "model");
    file.write("new content");
    file.commit();
  }
  EXPECT_EQ(testing::read_text(dir / "model"), "new content");
  EXPECT_EQ(files_in(dir.path()), 1u);
}

TEST(AtomicFile, AbandonedWriteLeavesTheOldFileAndNoTemporary) {
  testing::TempDir dir;
  testing::write_text(dir / "model", "old");
  {
    AtomicFile file(dir / "model");
    file.write("half of the new cont");
  }  // e.g. an exception while writing
  EXPECT_EQ(testing::read_text(dir / "model"), "old");
  EXPECT_EQ(files_in(dir.path()), 1u);
}

TEST(AtomicFile, MissingFolderIsAnErrorNamingThePath) {
  testing::TempDir dir;
  try {
    AtomicFile file(dir / "no" / "such" / "model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/model"), std::string::npos) << e.what();
  }
}

TEST(ReadFile, MissingFileIsAnErrorNamingIt) {
  try {
    read_file("/nonexistent/file.bin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/file.bin"), std::string::npos);
  }
}

TEST(MappedFile, SeesTheBytes) {
  testing::TempDir dir;
  testing::write_text(dir / "f", "abc");
  const MappedFile mapped(dir / "f");
  ASSERT_EQ(mapped.bytes().size(), 3u);
  EXPECT_EQ(static_cast<char>(mapped.bytes()[2]), 'c');
}

}  // namespace
}  // namespace pv
