// Access to the PyTorch reference fixtures for the nn tests.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <patchvec/npy.h>

#include "nn/resnet.h"
#include "nn/weights.h"
#include "testing.h"

namespace pv::testing {

inline at::Tensor load_reference(const std::string& name) {
  FloatArray array = read_npy(nn_fixtures() / name);
  return at::from_blob(array.values.data(), array.shape, at::kFloat).clone();
}

// The fixture images in the order the generator used (sorted by name).
inline std::vector<std::filesystem::path> fixture_images() {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(nn_fixtures() / "images")) {
    paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// The reference-preprocessed fixture images as one N x 3 x 224 x 224 batch.
inline at::Tensor reference_batch() {
  std::vector<at::Tensor> inputs;
  for (const auto& path : fixture_images()) {
    inputs.push_back(load_reference("preprocessed/" + path.filename().string() + ".npy"));
  }
  return at::stack(inputs);
}

inline nn::ResNet fixture_backbone(const std::string& name) {
  nn::ResNet network(nn::resnet_spec(name));
  nn::load_weights(*network, nn::TensorFile(nn_fixtures() / (name + ".safetensors")),
                   {"fc.", "layer4."});
  network->eval();
  return network;
}

// max |actual - expected| / max |expected|: the acceptance measure for parity with PyTorch.
inline double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  EXPECT_EQ(actual.sizes(), expected.sizes());
  if (actual.sizes() != expected.sizes()) return 1e9;
  const double scale = expected.abs().max().item<double>();
  return (actual - expected).abs().max().item<double>() / std::max(scale, 1e-30);
}

constexpr double kParityTolerance = 1e-4;

}  // namespace pv::testing
