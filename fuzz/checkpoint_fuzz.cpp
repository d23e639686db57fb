// PyTorch checkpoints (zip or legacy): the container, the strict unpickler, every tensor view
// checked against its storage, then copied into a module as --weights would.
#include <cstdint>

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <patchvec/error.h>

#include "fuzzing.h"
#include "nn/torch_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = pv::fuzzing::bytes_of(data, size);
  try {
    const pv::nn::TorchCheckpoint checkpoint(bytes, "fuzz");
    for (const auto& [name, entry] : checkpoint.state_dict()) {
      // Every view lies inside the input or in a buffer the checkpoint owns: touch every byte.
      volatile unsigned char sum = 0;
      for (const std::byte b : entry.bytes) sum = sum + static_cast<unsigned char>(b);
      (void)sum;
      std::size_t numel = 1;
      for (const auto side : entry.shape) numel *= static_cast<std::size_t>(side);
      if (entry.bytes.size() != numel * pv::nn::dtype_size(entry.dtype)) std::abort();
    }
  } catch (const pv::Error&) {
  }
  return 0;
}
