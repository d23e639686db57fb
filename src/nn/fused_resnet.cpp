#include "nn/fused_resnet.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

namespace pv::nn {
namespace {

at::Tensor apply(const auto& conv, const at::Tensor& x) {
  return at::conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding);
}

}  // namespace

FusedResNet::Conv FusedResNet::fold(torch::nn::Conv2dImpl& conv, torch::nn::BatchNorm2dImpl& bn) {
  const torch::NoGradGuard no_grad;
  // BN(conv(x)) = gamma * (W x - mean) / sqrt(var + eps) + beta = (s W) x + (beta - s mean).
  const at::Tensor scale = bn.weight / at::sqrt(bn.running_var + bn.options.eps());
  Conv fused;
  fused.weight =
      (conv.weight * scale.view({-1, 1, 1, 1})).contiguous(at::MemoryFormat::ChannelsLast);
  fused.bias = (bn.bias - bn.running_mean * scale).contiguous();
  fused.stride = conv.options.stride()->at(0);
  fused.padding = conv.weight.size(2) / 2;  // every ResNet conv pads to keep "same" size
  return fused;
}

std::vector<FusedResNet::Block> FusedResNet::fold_layer(torch::nn::Sequential& layer) {
  std::vector<Block> blocks;
  for (const auto& child : layer->children()) {
    auto& block = *child->as<ResidualBlockImpl>();
    Block fused;
    for (std::size_t i = 0; i < block.convs.size(); ++i) {
      fused.convs.push_back(fold(*block.convs[i], *block.bns[i]));
    }
    if (block.downsample) {
      fused.downsample = fold(*block.downsample[0]->as<torch::nn::Conv2dImpl>(),
                              *block.downsample[1]->as<torch::nn::BatchNorm2dImpl>());
    }
    blocks.push_back(std::move(fused));
  }
  return blocks;
}

FusedResNet::FusedResNet(ResNetImpl& source)
    : stem_(fold(*source.conv1, *source.bn1)),
      layer1_(fold_layer(source.layer1)),
      layer2_(fold_layer(source.layer2)),
      layer3_(fold_layer(source.layer3)) {}

at::Tensor FusedResNet::run_layer(const std::vector<Block>& layer, at::Tensor x) {
  for (const auto& block : layer) {
    at::Tensor out = x;
    for (std::size_t i = 0; i < block.convs.size(); ++i) {
      out = apply(block.convs[i], out);
      if (i + 1 < block.convs.size()) out.relu_();
    }
    out.add_(block.downsample ? apply(*block.downsample, x) : x).relu_();
    x = std::move(out);
  }
  return x;
}

Features FusedResNet::forward(const at::Tensor& images) const {
  at::Tensor x = apply(stem_, images.contiguous(at::MemoryFormat::ChannelsLast)).relu_();
  x = at::max_pool2d(x, 3, 2, 1);
  x = run_layer(layer1_, std::move(x));
  Features features;
  features.layer2 = run_layer(layer2_, std::move(x));
  features.layer3 = run_layer(layer3_, features.layer2);
  return features;
}

}  // namespace pv::nn
