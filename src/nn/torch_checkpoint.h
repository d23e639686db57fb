// PyTorch checkpoints (`torch.save`), read without Python and without running them.
//
// Zip format (PyTorch >= 1.6; torchvision's current weights, Lightning's .ckpt):
//   <archive>/data.pkl      the object, a pickle whose tensors name storages by key
//   <archive>/data/<key>    each storage's raw little-endian bytes (stored, 64-byte aligned)
//   <archive>/version, byteorder, ...
// Legacy format (PyTorch < 1.6; e.g. torchvision's wide_resnet50_2-95faca4d.pth): five pickles
// in a row (magic number, protocol version 1001, system info, the object, the storage keys), then
// each storage in key order as an int64 element count followed by its bytes.
//
// The pickles go through the strict reader of nn/pickle.h. Every tensor view is checked against
// its storage (offset, sizes and strides in bounds, dtype agreeing) before anything reads it.
#pragma once

#include <cstddef>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <patchvec/files.h>

#include "nn/pickle.h"
#include "nn/safetensors.h"

namespace pv::nn {

// Read-only once constructed; tensor() may be called from one thread at a time (it may copy
// strided views into buffers the checkpoint owns).
class TorchCheckpoint {
 public:
  // Maps and parses the file. Throws pv::Error naming the file for anything malformed or refused.
  explicit TorchCheckpoint(const std::filesystem::path& path);
  // The same over bytes that outlive the checkpoint; `name` stands for the file in messages.
  TorchCheckpoint(std::span<const std::byte> bytes, const std::string& name);
  ~TorchCheckpoint();
  TorchCheckpoint(TorchCheckpoint&&) noexcept;
  TorchCheckpoint& operator=(TorchCheckpoint&&) noexcept;

  const pickle::Value& root() const;
  const std::string& where() const;  // "weights file <path>: "
  std::string_view format() const;   // "PyTorch zip" or "PyTorch legacy"

  // The tensor a kTensor value describes, as contiguous row-major bytes (in place when the view
  // is contiguous, else a copy kept by the checkpoint). `name` is used in messages.
  TensorEntry tensor(const pickle::Value& value, const std::string& name) const;

  // The tensors of the state_dict it holds: the root when it is a dict of tensors, else the dict
  // under "state_dict" (Lightning), "model_state_dict" or "model". Entries that are not tensors
  // (anomalib keeps class names there) are skipped. Throws when there is no such dict.
  std::map<std::string, TensorEntry> state_dict() const;

  // True when the bytes start like a checkpoint of either format.
  static bool looks_like(std::span<const std::byte> bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pv::nn
