// Moving torchvision-layout weights between weights files (safetensors or PyTorch checkpoints,
// see tensor_file.h) and libtorch modules.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "nn/tensor_file.h"

namespace pv::nn {

struct WeightsReport {
  std::size_t loaded = 0;   // tensors copied into the module
  std::size_t ignored = 0;  // tensors of parts we do not build (fc.*, layer4.*), or outside prefix
  std::string prefix;       // the key prefix the module's tensors were found under ("" = none)
};

// Copies every parameter and buffer of `module` from the file's tensors, converting F16, BF16
// and F64 to float32. When the module's names are not found as they are, they are looked for
// under one common prefix (a training checkpoint's "model.backbone.", anomalib's
// "model.feature_extractor.feature_extractor."), and every key outside it is ignored. Keys under
// `ignored_prefixes` may be present and are skipped; BatchNorm's num_batches_tracked may be
// absent. Anything else (a missing key, an unexpected key, a wrong shape, a non-float dtype) is a
// pv::Error naming every offending key; the module is only modified when everything fits.
WeightsReport load_weights(torch::nn::Module& module, const TensorFile& file,
                           const std::vector<std::string>& ignored_prefixes);

// A floating-point tensor of a weights file as a float32 copy (F16, BF16 and F64 converted);
// nullopt for any other dtype.
std::optional<torch::Tensor> float_copy(const TensorEntry& entry);

// What load_weights() would find, without touching the module.
struct WeightsMatch {
  std::vector<std::string> problems;  // empty when the file fits
  std::string prefix;                 // as WeightsReport::prefix
};
WeightsMatch match_weights(const torch::nn::Module& module, const TensorFile& file,
                           const std::vector<std::string>& ignored_prefixes);

// Writes every parameter and buffer (except num_batches_tracked) as F32 safetensors.
void save_safetensors(const torch::nn::Module& module, const std::filesystem::path& path);

using NameFilter = std::function<bool(const std::string& name)>;

// The named tensors `keep` accepts, as safetensors bytes.
std::vector<std::byte> encode_tensors(const torch::nn::Module& module, const NameFilter& keep);

// Copies every tensor in `bytes` (safetensors) into the module's tensor of the same name; names
// the module lacks, shapes that differ, and float tensors that `required` accepts but `bytes`
// lacks are a pv::Error starting with `where`.
void decode_tensors(torch::nn::Module& module, std::span<const std::byte> bytes,
                    const std::string& where, const NameFilter& required = {});

// SHA-256 over the names and float32 bytes of the tensors `keep` accepts, in name order: a
// fingerprint of weights that were generated rather than read from a file.
std::string tensors_sha256(const torch::nn::Module& module, const NameFilter& keep);

}  // namespace pv::nn
