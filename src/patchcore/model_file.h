// The .pvm model file: one per category, versioned, checksummed.
//
// The container of util/container.h (shared with .pvs stores), version kModelFormatVersion:
//   magic "PATCHVEC"; field: 0 (reserved)
//   header     JSON: metadata and the sections' offsets, sizes, shapes (padded with spaces)
//   body       sections, 64-byte aligned: bank (F32 M x D; BF16 for reduced-precision models),
//              bank_neighbors (I32 M x k; earlier files only: scoring searches them now),
//              batchnorm (safetensors bytes; random backbones only),
//              backbone (safetensors bytes; models that carry their weights)
//
// Written atomically; read fully checked (magic, version, sizes, checksum, every section) before
// use.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace pv::patchcore {

inline constexpr std::uint32_t kModelFormatVersion = 1;

struct ModelFileContents {
  nlohmann::json metadata;           // everything but the sections
  at::Tensor bank;                   // M x D float32 or bfloat16
  at::Tensor bank_neighbors;         // M x k int64 (stored as int32); undefined: no section
  std::vector<std::byte> batchnorm;  // may be empty
  std::vector<std::byte> backbone;   // may be empty
};

void write_model_file(const std::filesystem::path& path, const ModelFileContents& contents);

// Throws pv::Error (prefixed with `where`) for a bank holding NaN, infinite or implausibly large
// values (beyond 1e12 squared distances overflow float32). read_model_file() checks it.
void check_bank_values(const at::Tensor& bank, const std::string& where);

// Throws pv::Error naming the file and what is wrong with it: a bad signature, version, size or
// checksum, or a section table that does not fit the file (bounds, overlap, alignment, dtype,
// shape), a bank that is not finite or neighbour indices outside the bank.
ModelFileContents read_model_file(const std::filesystem::path& path);

// The same from bytes in memory; `name` stands for the file in messages.
ModelFileContents read_model_bytes(std::span<const std::byte> bytes, const std::string& name);

}  // namespace pv::patchcore
