// Named tensors from a weights file, whatever its format: safetensors, or a PyTorch checkpoint
// (a state_dict from torch.save, or a training checkpoint holding one, Lightning's .ckpt
// included). The format is recognised from the first bytes, never from the file's name.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "nn/safetensors.h"
#include "nn/torch_checkpoint.h"

namespace pv::nn {

// Read-only; safe to share across threads once constructed.
class TensorFile {
 public:
  // Throws pv::Error naming the file when it is missing, of no known format, or malformed.
  explicit TensorFile(const std::filesystem::path& path);

  const std::map<std::string, TensorEntry>& tensors() const { return tensors_; }
  const std::filesystem::path& path() const { return path_; }
  std::string_view format() const;  // "safetensors", "PyTorch zip" or "PyTorch legacy"

 private:
  std::filesystem::path path_;
  std::optional<SafetensorsFile> safetensors_;
  std::optional<TorchCheckpoint> checkpoint_;
  std::map<std::string, TensorEntry> tensors_;
};

}  // namespace pv::nn
