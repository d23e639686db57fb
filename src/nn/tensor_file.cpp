#include "nn/tensor_file.h"

#include <array>
#include <fstream>

#include <patchvec/error.h>

namespace pv::nn {

TensorFile::TensorFile(const std::filesystem::path& path) : path_(path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    throw Error("weights file " + path.string() + " does not exist or is not a file");
  }
  std::array<std::byte, 16> head{};
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(head.data()), head.size());
  const auto start = std::span<const std::byte>(head).first(static_cast<std::size_t>(in.gcount()));
  if (TorchCheckpoint::looks_like(start)) {
    checkpoint_.emplace(path);
    tensors_ = checkpoint_->state_dict();
  } else if (start.size() < 9 || start[8] != std::byte{'{'}) {
    throw Error("weights file " + path.string() +
                ": neither safetensors nor a PyTorch checkpoint (.pth, .pt, .ckpt)");
  } else {
    // safetensors has no magic number beyond its JSON header; its own checks name the rest.
    safetensors_.emplace(path);
    tensors_ = safetensors_->tensors();
  }
}

std::string_view TensorFile::format() const {
  return checkpoint_ ? checkpoint_->format() : std::string_view("safetensors");
}

}  // namespace pv::nn
