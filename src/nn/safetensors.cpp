#include "nn/safetensors.h"

#include <array>
#include <cstring>
#include <functional>
#include <numeric>
#include <utility>

#include <nlohmann/json.hpp>

#include <patchvec/error.h>

#include "util/json_numbers.h"

namespace pv::nn {
namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;
};

constexpr std::array<DTypeInfo, 13> kDTypes = {{{DType::kBool, "BOOL", 1},
                                                {DType::kU8, "U8", 1},
                                                {DType::kI8, "I8", 1},
                                                {DType::kI16, "I16", 2},
                                                {DType::kU16, "U16", 2},
                                                {DType::kF16, "F16", 2},
                                                {DType::kBF16, "BF16", 2},
                                                {DType::kI32, "I32", 4},
                                                {DType::kU32, "U32", 4},
                                                {DType::kF32, "F32", 4},
                                                {DType::kF64, "F64", 8},
                                                {DType::kI64, "I64", 8},
                                                {DType::kU64, "U64", 8}}};

const DTypeInfo& info(DType dtype) {
  for (const auto& entry : kDTypes) {
    if (entry.dtype == dtype) return entry;
  }
  throw Error("unknown dtype");
}

// The format caps the header at 100 MB; anything larger is a corrupt length field.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

std::uint64_t read_le64(const std::byte* bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = value << 8 | static_cast<std::uint64_t>(bytes[i]);
  return value;
}

}  // namespace

std::size_t dtype_size(DType dtype) {
  return info(dtype).size;
}
std::string_view dtype_name(DType dtype) {
  return info(dtype).name;
}

std::string shape_string(std::span<const std::int64_t> shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::map<std::string, TensorEntry> parse_safetensors(std::span<const std::byte> bytes,
                                                     const std::string& where) {
  std::map<std::string, TensorEntry> tensors;
  if (bytes.size() < 8)
    throw Error(where + "truncated (" + std::to_string(bytes.size()) + " bytes, no header)");
  const std::uint64_t header_size = read_le64(bytes.data());
  if (header_size > kMaxHeaderBytes) {
    throw Error(where + "not a safetensors file (header length " + std::to_string(header_size) +
                ")");
  }
  if (header_size > bytes.size() - 8) {
    throw Error(where + "truncated: header needs " + std::to_string(header_size) +
                " bytes, file has " + std::to_string(bytes.size() - 8) + " after the length field");
  }
  const auto header_text =
      std::string_view(reinterpret_cast<const char*>(bytes.data()) + 8, header_size);
  const auto data = bytes.subspan(8 + header_size);

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + "header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw Error(where + "header is not a JSON object");

  for (const auto& [name, description] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string at = where + "tensor " + name + ": ";
    try {
      TensorEntry entry;
      const auto dtype_text = description.at("dtype").get<std::string>();
      const auto known = std::find_if(kDTypes.begin(), kDTypes.end(),
                                      [&](const DTypeInfo& d) { return d.name == dtype_text; });
      if (known == kDTypes.end()) throw Error(at + "unsupported dtype " + dtype_text);
      entry.dtype = known->dtype;
      entry.shape = json_integers<std::int64_t>(description.at("shape"), at + "shape");
      const auto offsets =
          json_integers<std::uint64_t>(description.at("data_offsets"), at + "data_offsets");
      if (offsets.size() != 2 || offsets[0] > offsets[1]) throw Error(at + "bad data_offsets");
      std::uint64_t count = 1;
      for (const auto dim : entry.shape) {
        if (dim < 0) throw Error(at + "negative dimension in shape " + shape_string(entry.shape));
        // No product of dimensions may wrap around: it would match a few bytes to a huge shape.
        if (dim != 0 && count > (std::uint64_t{1} << 56) / static_cast<std::uint64_t>(dim)) {
          throw Error(at + "shape " + shape_string(entry.shape) + " is larger than any file");
        }
        count *= static_cast<std::uint64_t>(dim);
      }
      if (offsets[1] > data.size()) {
        throw Error(at + "data ends at byte " + std::to_string(offsets[1]) +
                    " but the file holds " + std::to_string(data.size()) +
                    " data bytes (truncated file?)");
      }
      if (offsets[1] - offsets[0] != count * known->size) {
        throw Error(at + std::to_string(offsets[1] - offsets[0]) + " bytes do not hold shape " +
                    shape_string(entry.shape) + " of " + dtype_text);
      }
      entry.bytes = data.subspan(offsets[0], offsets[1] - offsets[0]);
      tensors.emplace(name, std::move(entry));
    } catch (const nlohmann::json::exception& e) {
      throw Error(at + "malformed description (" + e.what() + ")");
    }
  }
  return tensors;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : file_(path),
      tensors_(parse_safetensors(file_.bytes(), "weights file " + path.string() + ": ")) {}

std::vector<std::byte> encode_safetensors(const std::map<std::string, FloatTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const auto count = std::accumulate(tensor.shape.begin(), tensor.shape.end(), std::int64_t{1},
                                       std::multiplies<>());
    if (count != static_cast<std::int64_t>(tensor.values.size())) {
      throw Error("safetensors: tensor " + name + " has " + std::to_string(tensor.values.size()) +
                  " values for shape " + shape_string(tensor.shape));
    }
    const std::uint64_t size = tensor.values.size() * sizeof(float);
    header[name] = {
        {"dtype", "F32"}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // keeps tensor data 8-byte aligned
  std::vector<std::byte> bytes(8 + header_text.size() + offset);
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<std::byte>(header_text.size() >> (8 * i) & 0xff);
  std::memcpy(bytes.data() + 8, header_text.data(), header_text.size());
  std::byte* out = bytes.data() + 8 + header_text.size();
  for (const auto& [name, tensor] : tensors) {
    std::memcpy(out, tensor.values.data(), tensor.values.size() * sizeof(float));
    out += tensor.values.size() * sizeof(float);
  }
  return bytes;
}

void write_safetensors(const std::filesystem::path& path,
                       const std::map<std::string, FloatTensor>& tensors) {
  AtomicFile file(path);
  file.write(encode_safetensors(tensors));
  file.commit();
}

}  // namespace pv::nn
