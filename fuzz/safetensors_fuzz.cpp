// The safetensors parser, and copying what it accepts into a module's tensors.
#include <cstdint>

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <patchvec/error.h>

#include "fuzzing.h"
#include "nn/safetensors.h"
#include "nn/weights.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // "0.weight" [3, 4], "0.bias" [3], "1.weight", "1.bias", "1.running_mean", "1.running_var" [3]
  static torch::nn::Sequential module(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  const auto bytes = pv::fuzzing::bytes_of(data, size);
  try {
    for (const auto& [name, entry] : pv::nn::parse_safetensors(bytes, "fuzz: ")) {
      if (entry.bytes.data() < bytes.data() ||
          entry.bytes.data() + entry.bytes.size() > bytes.data() + bytes.size()) {
        std::abort();  // a tensor outside the buffer
      }
    }
    pv::nn::decode_tensors(*module, bytes, "fuzz: ");
  } catch (const pv::Error&) {
  }
  return 0;
}
