#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/npy.h>

#include "testing.h"

namespace pv {
namespace {

TEST(Npy, RoundTripKeepsShapeAndValues) {
  testing::TempDir dir;
  const std::vector<std::int64_t> shape = {2, 3, 4};
  std::vector<float> values(24);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.5f * static_cast<float>(i) - 3.f;
  write_npy(dir / "a.npy", shape, values);
  const FloatArray read = read_npy(dir / "a.npy");
  EXPECT_EQ(read.shape, shape);
  EXPECT_EQ(read.values, values);
}

TEST(Npy, HeaderIsNumpyVersion1AlignedTo64Bytes) {
  testing::TempDir dir;
  const std::vector<std::int64_t> shape = {5};
  const std::vector<float> values(5, 1.f);
  write_npy(dir / "a.npy", shape, values);
  const std::string bytes = testing::read_text(dir / "a.npy");
  ASSERT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const std::size_t header =
      static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
  EXPECT_EQ((10 + header) % 64, 0u);
  EXPECT_NE(bytes.find("'shape': (5,)"), std::string::npos);
  EXPECT_EQ(bytes.size(), 10 + header + 5 * sizeof(float));
}

TEST(Npy, ShapeThatDoesNotMatchValuesIsAnError) {
  testing::TempDir dir;
  const std::vector<std::int64_t> shape = {2, 2};
  const std::vector<float> values(3);
  EXPECT_THROW(write_npy(dir / "a.npy", shape, values), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "a.npy"));
}

TEST(Npy, TruncatedFileNamesTheFile) {
  testing::TempDir dir;
  const std::vector<std::int64_t> shape = {4, 4};
  write_npy(dir / "a.npy", shape, std::vector<float>(16, 2.f));
  std::filesystem::resize_file(dir / "a.npy", std::filesystem::file_size(dir / "a.npy") - 4);
  try {
    read_npy(dir / "a.npy");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.npy"), std::string::npos) << e.what();
  }
}

TEST(Npy, RejectsOtherDtypes) {
  testing::TempDir dir;
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }";
  header.append(128 - 10 - header.size() - 1, ' ');
  header += '\n';
  testing::write_text(dir / "d.npy", std::string("\x93NUMPY\x01\x00", 8) +
                                         static_cast<char>(header.size()) + '\0' + header +
                                         std::string(8, '\0'));
  EXPECT_THROW(read_npy(dir / "d.npy"), Error);
}

}  // namespace
}  // namespace pv
