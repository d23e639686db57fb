// torchvision's ResNet family, built with libtorch's module API so that parameter and buffer
// names are exactly torchvision's ("layer3.0.downsample.1.running_var"). Only the stem and
// layer1..layer3 exist: PatchCore reads layer2 and layer3, so layer4 and fc are never built.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

namespace pv::nn {

enum class BlockKind { kBasic, kBottleneck };

struct ResNetSpec {
  std::string name;
  BlockKind block;
  std::array<int, 3> blocks;  // residual blocks in layer1..layer3
  int width_per_group;        // 64 for ResNet, 128 for Wide ResNet
};

// "resnet18", "resnet50", "wide_resnet50_2"; throws pv::Error listing these otherwise.
const ResNetSpec& resnet_spec(std::string_view name);
std::vector<std::string> backbone_names();

// Output channels of layer2 and layer3 for a spec (128/256 basic, 512/1024 bottleneck).
std::array<std::int64_t, 2> feature_channels(const ResNetSpec& spec);

struct Features {
  torch::Tensor layer2;
  torch::Tensor layer3;
};

class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(BlockKind kind, std::int64_t in_channels, std::int64_t planes,
                    std::int64_t stride, int width_per_group);
  torch::Tensor forward(torch::Tensor x);

  BlockKind kind;
  std::vector<torch::nn::Conv2d> convs;       // conv1, conv2[, conv3]
  std::vector<torch::nn::BatchNorm2d> bns;    // bn1, bn2[, bn3]
  torch::nn::Sequential downsample{nullptr};  // conv 1x1 + bn, when the shape changes
};
TORCH_MODULE(ResidualBlock);

class ResNetImpl : public torch::nn::Module {
 public:
  explicit ResNetImpl(const ResNetSpec& spec);
  Features forward(torch::Tensor x);

  // torchvision's initialisation: Kaiming-normal (fan_out, relu) convolutions, BatchNorm with
  // weight 1 and bias 0, statistics reset. Deterministic for a seed.
  void reset_parameters(std::uint64_t seed);

  // Replaces every BatchNorm's running mean and variance by their average over the batches
  // `next_batch` yields (until nullopt), each batch weighted equally: a forward pass in training
  // mode with momentum = None, as torch.optim.swa_utils.update_bn does. Leaves the module in
  // eval mode with momentum 0.1.
  void reestimate_batchnorm(const std::function<std::optional<torch::Tensor>()>& next_batch);

  ResNetSpec spec;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr};
};
TORCH_MODULE(ResNet);

}  // namespace pv::nn
