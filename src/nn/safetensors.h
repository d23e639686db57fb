// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw tensor bytes.
// It is what model hubs publish and it cannot execute code, unlike pickles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <patchvec/files.h>

namespace pv::nn {

enum class DType { kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };

std::size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // as spelled in the header: "F32", "BF16", ...

struct TensorEntry {
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;  // points into the file's mapping
};

std::string shape_string(std::span<const std::int64_t> shape);  // "[256, 512, 1, 1]"

// Parses and validates safetensors bytes; `where` starts every error message ("weights file
// w.safetensors: "). The entries point into `bytes`.
std::map<std::string, TensorEntry> parse_safetensors(std::span<const std::byte> bytes,
                                                     const std::string& where);

// A safetensors file, memory-mapped and fully validated on open: header length, JSON, dtypes,
// shapes and that every tensor's bytes lie inside the file and match its shape. Any defect is a
// pv::Error naming the file (and the tensor). Read-only; safe to share across threads.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::map<std::string, TensorEntry>& tensors() const { return tensors_; }
  const std::filesystem::path& path() const { return file_.path(); }

 private:
  MappedFile file_;
  std::map<std::string, TensorEntry> tensors_;
};

// A tensor to write: float32 values in row-major order.
struct FloatTensor {
  std::vector<std::int64_t> shape;
  std::span<const float> values;
};

// F32 tensors as safetensors bytes.
std::vector<std::byte> encode_safetensors(const std::map<std::string, FloatTensor>& tensors);

// The same, written to a file atomically.
void write_safetensors(const std::filesystem::path& path,
                       const std::map<std::string, FloatTensor>& tensors);

}  // namespace pv::nn
