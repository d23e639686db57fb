#include "patchcore/model_file.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>
#include <patchvec/files.h>

#include "util/container.h"
#include "util/json_numbers.h"

namespace pv::patchcore {
namespace {

constexpr container::Format kFormat{
    .magic = "PATCHVEC", .version = kModelFormatVersion, .noun = "model"};
constexpr std::size_t kPreambleBytes = container::kPreambleBytes;
constexpr std::size_t kAlignment = 64;

std::size_t align(std::size_t offset) {
  return (offset + kAlignment - 1) / kAlignment * kAlignment;
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

void check_bank_values(const at::Tensor& bank, const std::string& where) {
  // Features of a backbone are far below this; beyond it squared distances overflow float32.
  constexpr float kMaxBankValue = 1e12f;
  const at::Tensor values = bank.to(at::kFloat);
  if (!at::isfinite(values).all().item<bool>() ||
      values.abs().max().item<float>() > kMaxBankValue) {
    throw Error(where + "section bank: holds NaN, infinite or implausibly large values");
  }
}

void write_model_file(const std::filesystem::path& path, const ModelFileContents& contents) {
  const bool half = contents.bank.scalar_type() == at::kBFloat16;
  const at::Tensor bank =
      half ? contents.bank.contiguous() : contents.bank.to(at::kFloat).contiguous();
  std::vector<Section> sections = {
      {"bank", bytes_of(bank), half ? "BF16" : "F32", bank.sizes().vec()}};
  at::Tensor neighbors;  // outlives `sections`, which point into it
  if (contents.bank_neighbors.defined()) {
    neighbors = contents.bank_neighbors.to(at::kInt).contiguous();
    sections.push_back({"bank_neighbors", bytes_of(neighbors), "I32", neighbors.sizes().vec()});
  }
  if (!contents.batchnorm.empty()) {
    sections.push_back({"batchnorm",
                        contents.batchnorm,
                        "U8",
                        {static_cast<std::int64_t>(contents.batchnorm.size())}});
  }
  if (!contents.backbone.empty()) {
    sections.push_back({"backbone",
                        contents.backbone,
                        "U8",
                        {static_cast<std::int64_t>(contents.backbone.size())}});
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

  std::vector<std::byte> out = container::layout(kFormat, /*field=*/0, header_text,
                                                 offset - kPreambleBytes - header_text.size());
  for (const auto& section : sections) {
    const auto at = header["sections"][section.name]["offset"].get<std::size_t>();
    std::memcpy(out.data() + at, section.bytes.data(), section.bytes.size());
  }
  container::write(path, out);
}

namespace {

// The section table, checked against the file before anything is read from it: the checksum
// only proves the file unchanged, so every offset, size and shape is a hostile number until
// shown otherwise.
struct SectionEntry {
  std::string name;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  std::string dtype;
  std::vector<std::int64_t> shape;
};

// Each section's possible element types and their sizes.
const std::map<std::string, std::map<std::string, std::uint64_t>> kSectionTypes = {
    {"bank", {{"F32", 4}, {"BF16", 2}}},
    {"bank_neighbors", {{"I32", 4}}},
    {"batchnorm", {{"U8", 1}}},
    {"backbone", {{"U8", 1}}}};

std::vector<SectionEntry> section_table(const nlohmann::json& header, std::uint64_t data_begin,
                                        std::uint64_t data_end, const std::string& where) {
  if (!header.contains("sections") || !header.at("sections").is_object()) {
    throw Error(where + "corrupt (no section table)");
  }
  std::vector<SectionEntry> sections;
  for (const auto& [name, entry] : header.at("sections").items()) {
    const std::string field = where + "section " + name + ": ";
    const auto type = kSectionTypes.find(name);
    if (type == kSectionTypes.end()) throw Error(where + "unknown section '" + name + "'");
    SectionEntry s{.name = name};
    try {
      s.offset = json_integer<std::uint64_t>(entry.at("offset"), field + "offset");
      s.bytes = json_integer<std::uint64_t>(entry.at("bytes"), field + "bytes");
      s.dtype = entry.at("dtype").get<std::string>();
      s.shape = json_integers<std::int64_t>(entry.at("shape"), field + "shape");
    } catch (const nlohmann::json::exception&) {
      throw Error(field + "offset, bytes, dtype and shape must be given as numbers and text");
    }
    const auto element = type->second.find(s.dtype);
    if (element == type->second.end()) {
      std::string expected;
      for (const auto& [dtype, size] : type->second)
        expected += (expected.empty() ? "" : " or ") + dtype;
      throw Error(field + "dtype " + s.dtype + ", expected " + expected);
    }
    if (s.offset % kAlignment != 0) throw Error(field + "offset is not 64-byte aligned");
    if (s.offset < data_begin || s.offset > data_end || s.bytes > data_end - s.offset) {
      throw Error(field + "bytes " + std::to_string(s.offset) + "+" + std::to_string(s.bytes) +
                  " lie outside the data area " + std::to_string(data_begin) + "-" +
                  std::to_string(data_end));
    }
    std::uint64_t count = 1;
    for (const std::int64_t dim : s.shape) {
      if (dim < 0) throw Error(field + "negative dimension in its shape");
      if (dim != 0 && count > std::numeric_limits<std::uint64_t>::max() / 8 / dim) {
        throw Error(field + "shape overflows");
      }
      count *= static_cast<std::uint64_t>(dim);
    }
    if (count * element->second != s.bytes) {
      throw Error(field + "size " + std::to_string(s.bytes) + " does not match its shape");
    }
    sections.push_back(std::move(s));
  }
  std::sort(sections.begin(), sections.end(),
            [](const auto& a, const auto& b) { return a.offset < b.offset; });
  for (std::size_t i = 1; i < sections.size(); ++i) {
    if (sections[i - 1].offset + sections[i - 1].bytes > sections[i].offset) {
      throw Error(where + "sections " + sections[i - 1].name + " and " + sections[i].name +
                  " overlap");
    }
  }
  return sections;
}

const SectionEntry& find_section(const std::vector<SectionEntry>& sections, const char* name,
                                 const std::string& where) {
  for (const auto& s : sections) {
    if (s.name == name) return s;
  }
  throw Error(where + "section " + name + " is missing");
}

// The re-weighting neighbours earlier versions stored: checked (one row per bank vector, indices
// inside the bank), then kept as read.
at::Tensor neighbour_indices(const SectionEntry& section, std::span<const std::byte> bytes,
                             std::int64_t bank_rows, const std::string& where) {
  if (section.shape.size() != 2 || section.shape[0] != bank_rows) {
    throw Error(where + "section bank_neighbors: shape must be [" + std::to_string(bank_rows) +
                ", k], one row per bank vector");
  }
  at::Tensor indices = at::empty(section.shape, at::kInt);
  std::memcpy(indices.data_ptr(), bytes.data(), section.bytes);
  if (indices.numel() > 0 &&
      (indices.min().item<std::int32_t>() < 0 || indices.max().item<std::int64_t>() >= bank_rows)) {
    throw Error(where + "section bank_neighbors: indices outside 0.." +
                std::to_string(bank_rows - 1));
  }
  return indices.to(at::kLong);
}

}  // namespace

ModelFileContents read_model_file(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    throw Error("model file " + path.string() + ": does not exist");
  }
  const MappedFile file(path);
  return read_model_bytes(file.bytes(), path.string());
}

ModelFileContents read_model_bytes(std::span<const std::byte> bytes, const std::string& name) {
  const std::string where = "model file " + name + ": ";
  const container::Preamble preamble = container::read_preamble(bytes, kFormat, where);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(preamble.header);
  } catch (const nlohmann::json::exception&) {
    throw Error(where + "corrupt (unreadable header)");
  }
  if (!header.is_object()) throw Error(where + "corrupt (the header is not an object)");
  // Sizes before checksum: a short file is reported as truncated, not merely as corrupt.
  const std::uint64_t data_begin = preamble.body_begin;
  std::uint64_t end = data_begin;
  try {
    if (header.contains("sections") && header.at("sections").is_object()) {
      for (const auto& [name, section] : header.at("sections").items()) {
        const auto offset = json_integer<std::uint64_t>(section.at("offset"), where + name);
        const auto size = json_integer<std::uint64_t>(section.at("bytes"), where + name);
        if (offset > (std::uint64_t{1} << 50) || size > (std::uint64_t{1} << 50)) {
          throw Error(where + "section " + name + ": offset or size beyond any file");
        }
        end = std::max<std::uint64_t>(end, align(offset + size));
      }
    }
  } catch (const nlohmann::json::exception&) {
    throw Error(where + "corrupt (bad section table)");
  }
  container::check_checksum(bytes, end, where);

  const auto sections = section_table(header, data_begin, end, where);
  const auto span_of = [&](const SectionEntry& s) { return bytes.subspan(s.offset, s.bytes); };
  ModelFileContents contents;
  const SectionEntry& bank = find_section(sections, "bank", where);
  if (bank.shape.size() != 2 || bank.shape[0] < 1 || bank.shape[1] < 1) {
    throw Error(where + "section bank: shape must be [vectors, dimensions], both positive");
  }
  contents.bank = at::empty(bank.shape, bank.dtype == "BF16" ? at::kBFloat16 : at::kFloat);
  std::memcpy(contents.bank.data_ptr(), span_of(bank).data(), bank.bytes);
  check_bank_values(contents.bank, where);
  for (const auto& s : sections) {
    if (s.name == "batchnorm") {
      const auto bn = span_of(s);
      contents.batchnorm.assign(bn.begin(), bn.end());
    } else if (s.name == "backbone") {
      const auto tensors = span_of(s);
      contents.backbone.assign(tensors.begin(), tensors.end());
    } else if (s.name == "bank_neighbors") {  // files of earlier versions only
      contents.bank_neighbors = neighbour_indices(s, span_of(s), bank.shape[0], where);
    }
  }
  header.erase("sections");
  contents.metadata = std::move(header);
  return contents;
}

}  // namespace pv::patchcore
