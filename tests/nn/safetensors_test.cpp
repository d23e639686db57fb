#include "nn/safetensors.h"

#include <cstring>

#include <gtest/gtest.h>

#include <patchvec/error.h>

#include "testing.h"

namespace pv::nn {
namespace {

std::string with_header(const std::string& json, std::size_t data_bytes = 0) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(json.size() >> (8 * i) & 0xff);
  return bytes + json + std::string(data_bytes, '\0');
}

std::string error_of(const std::filesystem::path& path) {
  try {
    SafetensorsFile file(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, RoundTrip) {
  testing::TempDir dir;
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const std::vector<float> b = {-1.5f};
  write_safetensors(dir / "t.safetensors", {{"a", {{2, 3}, a}}, {"b.c", {{1}, b}}});
  const SafetensorsFile file(dir / "t.safetensors");
  ASSERT_EQ(file.tensors().size(), 2u);
  const TensorEntry& entry = file.tensors().at("a");
  EXPECT_EQ(entry.dtype, DType::kF32);
  EXPECT_EQ(entry.shape, (std::vector<std::int64_t>{2, 3}));
  ASSERT_EQ(entry.bytes.size(), 24u);
  float values[6];
  std::memcpy(values, entry.bytes.data(), 24);
  EXPECT_EQ(values[5], 6.f);
}

TEST(Safetensors, AShapeWhoseProductWrapsAroundIsRefused) {
  // 2^62 x 4 floats "fit" 0 bytes when the product wraps: it once passed the size check.
  testing::TempDir dir;
  testing::write_text(
      dir / "w.safetensors",
      with_header(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})"));
  const auto message = error_of(dir / "w.safetensors");
  EXPECT_NE(message.find("tensor a: shape [4611686018427387904, 4] is larger than any file"),
            std::string::npos)
      << message;
}

TEST(Safetensors, ANumberTooLargeForItsTypeIsRefused) {
  // Found by the safetensors fuzz target: a 128-digit offset parses as the double 1e127, whose
  // conversion to an integer was undefined behaviour (UBSan).
  testing::TempDir dir;
  testing::write_text(dir / "w.safetensors",
                      with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1)" +
                                  std::string(127, '0') + "]}}"));
  const auto message = error_of(dir / "w.safetensors");
  EXPECT_NE(message.find("tensor a: data_offsets must be a whole number"), std::string::npos)
      << message;
  testing::write_text(
      dir / "w.safetensors",
      with_header(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4));
  EXPECT_NE(error_of(dir / "w.safetensors").find("tensor a: shape must be a whole number"),
            std::string::npos);
}

TEST(Safetensors, ShorterThanTheLengthField) {
  testing::TempDir dir;
  testing::write_text(dir / "w.safetensors", "abc");
  const auto message = error_of(dir / "w.safetensors");
  EXPECT_NE(message.find("w.safetensors"), std::string::npos);
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST(Safetensors, HeaderLongerThanTheFile) {
  testing::TempDir dir;
  testing::write_text(dir / "w.safetensors", with_header(R"({"a":{}})").substr(0, 12));
  EXPECT_NE(error_of(dir / "w.safetensors").find("truncated: header needs"), std::string::npos);
}

TEST(Safetensors, AbsurdHeaderLength) {
  testing::TempDir dir;
  testing::write_text(dir / "w.safetensors", std::string(8, '\xff') + "{}");
  EXPECT_NE(error_of(dir / "w.safetensors").find("not a safetensors file"), std::string::npos);
}

TEST(Safetensors, HeaderIsNotJson) {
  testing::TempDir dir;
  testing::write_text(dir / "w.safetensors", with_header("{not json"));
  EXPECT_NE(error_of(dir / "w.safetensors").find("not valid JSON"), std::string::npos);
}

TEST(Safetensors, DataBeyondTheEndOfTheFile) {
  testing::TempDir dir;
  testing::write_text(dir / "w.safetensors",
                      with_header(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  const auto message = error_of(dir / "w.safetensors");
  EXPECT_NE(message.find("tensor w"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated file"), std::string::npos) << message;
}

TEST(Safetensors, ByteCountDoesNotMatchShape) {
  testing::TempDir dir;
  testing::write_text(
      dir / "w.safetensors",
      with_header(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16));
  EXPECT_NE(error_of(dir / "w.safetensors").find("do not hold shape [3] of F32"),
            std::string::npos);
}

TEST(Safetensors, UnknownDtype) {
  testing::TempDir dir;
  testing::write_text(dir / "w.safetensors",
                      with_header(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})", 2));
  EXPECT_NE(error_of(dir / "w.safetensors").find("unsupported dtype Q4"), std::string::npos);
}

TEST(Safetensors, MissingField) {
  testing::TempDir dir;
  testing::write_text(dir / "w.safetensors", with_header(R"({"w":{"dtype":"F32"}})"));
  EXPECT_NE(error_of(dir / "w.safetensors").find("tensor w: malformed"), std::string::npos);
}

TEST(Safetensors, MetadataIsSkipped) {
  testing::TempDir dir;
  testing::write_text(
      dir / "w.safetensors",
      with_header(
          R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})",
          4));
  const SafetensorsFile file(dir / "w.safetensors");
  EXPECT_EQ(file.tensors().size(), 1u);
  EXPECT_EQ(file.tensors().at("w").dtype, DType::kF16);
}

}  // namespace
}  // namespace pv::nn
