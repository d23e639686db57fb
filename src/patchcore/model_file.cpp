#include "patchcore/model_file.h"

#include <cstring>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>

#include "util/files.h"
#include "util/sha256.h"

namespace pv::patchcore {
namespace {

constexpr char kMagic[8] = {'P', 'A', 'T', 'C', 'H', 'V', 'E', 'C'};
constexpr std::size_t kPreambleBytes = 24;
constexpr std::size_t kChecksumBytes = 64;  // SHA-256 as hex text
constexpr std::size_t kAlignment = 64;

std::size_t align(std::size_t offset) {
  return (offset + kAlignment - 1) / kAlignment * kAlignment;
}

template <typename T>
void put(std::vector<std::byte>& out, std::size_t at, T value) {
  std::memcpy(out.data() + at, &value, sizeof value);
}

template <typename T>
T get(std::span<const std::byte> bytes, std::size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof value);
  return value;
}

struct Section {
  const char* name;
  std::span<const std::byte> bytes;
  const char* dtype;
  std::vector<std::int64_t> shape;
};

std::span<const std::byte> bytes_of(const at::Tensor& tensor) {
  return {reinterpret_cast<const std::byte*>(tensor.data_ptr()),
          static_cast<std::size_t>(tensor.numel() * tensor.element_size())};
}

}  // namespace

void write_model_file(const std::filesystem::path& path, const ModelFileContents& contents) {
  const at::Tensor bank = contents.bank.to(at::kFloat).contiguous();
  const at::Tensor neighbors = contents.bank_neighbors.to(at::kInt).contiguous();
  std::vector<Section> sections = {
      {"bank", bytes_of(bank), "F32", bank.sizes().vec()},
      {"bank_neighbors", bytes_of(neighbors), "I32", neighbors.sizes().vec()},
  };
  if (!contents.batchnorm.empty()) {
    sections.push_back({"batchnorm",
                        contents.batchnorm,
                        "U8",
                        {static_cast<std::int64_t>(contents.batchnorm.size())}});
  }
  // The header holds the sections' offsets, which depend on the header's length: lay out with a
  // generous width for the numbers, then pad the header to it.
  nlohmann::json header = contents.metadata;
  header["sections"] = nlohmann::json::object();
  for (const auto& section : sections) {
    header["sections"][section.name] = {{"offset", std::uint64_t{0}},
                                        {"bytes", section.bytes.size()},
                                        {"dtype", section.dtype},
                                        {"shape", section.shape}};
  }
  const std::size_t header_room = header.dump().size() + 32 * sections.size() + 64;
  std::size_t offset = align(kPreambleBytes + header_room);
  for (const auto& section : sections) {
    header["sections"][section.name]["offset"] = offset;
    offset = align(offset + section.bytes.size());
  }
  std::string header_text = header.dump();
  if (header_text.size() > header_room) throw Error("model file: header layout overflow");
  header_text.append(header_room - header_text.size(), ' ');

  std::vector<std::byte> out(offset + kChecksumBytes, std::byte{0});
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  put<std::uint32_t>(out, 8, kModelFormatVersion);
  put<std::uint32_t>(out, 12, 0);
  put<std::uint64_t>(out, 16, header_text.size());
  std::memcpy(out.data() + kPreambleBytes, header_text.data(), header_text.size());
  for (const auto& section : sections) {
    const auto at = header["sections"][section.name]["offset"].get<std::size_t>();
    std::memcpy(out.data() + at, section.bytes.data(), section.bytes.size());
  }
  const std::string digest = sha256_hex({out.data(), offset});
  std::memcpy(out.data() + offset, digest.data(), kChecksumBytes);
  AtomicFile file(path);
  file.write(out);
  file.commit();
}

ModelFileContents read_model_file(const std::filesystem::path& path) {
  const std::string where = "model file " + path.string() + ": ";
  if (!std::filesystem::exists(path)) throw Error(where + "does not exist");
  const MappedFile file(path);
  const auto bytes = file.bytes();
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    throw Error(where + "not a PatchVec model (no PATCHVEC signature)");
  }
  if (bytes.size() < kPreambleBytes + kChecksumBytes) throw Error(where + "truncated");
  const auto version = get<std::uint32_t>(bytes, 8);
  if (version != kModelFormatVersion) {
    throw Error(where + "format version " + std::to_string(version) + ", this patchvec reads " +
                std::to_string(kModelFormatVersion) + " (re-train the model with this version)");
  }
  const auto header_size = get<std::uint64_t>(bytes, 16);
  if (header_size > bytes.size() - kPreambleBytes - kChecksumBytes) {
    throw Error(where + "truncated (header of " + std::to_string(header_size) + " bytes)");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(std::string_view(
        reinterpret_cast<const char*>(bytes.data()) + kPreambleBytes, header_size));
  } catch (const nlohmann::json::exception&) {
    throw Error(where + "corrupt (unreadable header)");
  }
  // Sizes before checksum: a short file is reported as truncated, not merely as corrupt.
  std::size_t end = kPreambleBytes + header_size;
  try {
    for (const auto& [name, section] : header.at("sections").items()) {
      end = std::max(end, align(section.at("offset").get<std::size_t>() +
                                section.at("bytes").get<std::size_t>()));
    }
  } catch (const nlohmann::json::exception&) {
    throw Error(where + "corrupt (bad section table)");
  }
  if (bytes.size() < end + kChecksumBytes) {
    throw Error(where + "truncated: " + std::to_string(bytes.size()) + " bytes, expected " +
                std::to_string(end + kChecksumBytes));
  }
  if (bytes.size() != end + kChecksumBytes)
    throw Error(where + "corrupt (unexpected trailing bytes)");
  const std::string digest = sha256_hex(bytes.first(end));
  const std::string_view stored(reinterpret_cast<const char*>(bytes.data()) + end, kChecksumBytes);
  if (digest != stored) throw Error(where + "corrupt (checksum mismatch): copy or train it again");

  const auto section = [&](const char* name, const char* dtype, std::size_t element) {
    const auto& entry = header.at("sections").at(name);
    if (entry.at("dtype").get<std::string>() != dtype)
      throw Error(where + name + " has the wrong type");
    const auto shape = entry.at("shape").get<std::vector<std::int64_t>>();
    std::int64_t count = 1;
    for (const auto dim : shape) count *= dim;
    if (static_cast<std::size_t>(count) * element != entry.at("bytes").get<std::size_t>()) {
      throw Error(where + name + " size does not match its shape");
    }
    return std::make_pair(
        bytes.subspan(entry.at("offset").get<std::size_t>(), entry.at("bytes").get<std::size_t>()),
        shape);
  };
  ModelFileContents contents;
  try {
    const auto [bank_bytes, bank_shape] = section("bank", "F32", 4);
    contents.bank = at::empty(bank_shape, at::kFloat);
    std::memcpy(contents.bank.data_ptr(), bank_bytes.data(), bank_bytes.size());
    const auto [neighbor_bytes, neighbor_shape] = section("bank_neighbors", "I32", 4);
    at::Tensor neighbors = at::empty(neighbor_shape, at::kInt);
    std::memcpy(neighbors.data_ptr(), neighbor_bytes.data(), neighbor_bytes.size());
    contents.bank_neighbors = neighbors.to(at::kLong);
    if (header.at("sections").contains("batchnorm")) {
      const auto [bn_bytes, bn_shape] = section("batchnorm", "U8", 1);
      contents.batchnorm.assign(bn_bytes.begin(), bn_bytes.end());
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + "corrupt (" + e.what() + ")");
  }
  header.erase("sections");
  contents.metadata = std::move(header);
  return contents;
}

}  // namespace pv::patchcore
