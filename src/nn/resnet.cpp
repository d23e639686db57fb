#include "nn/resnet.h"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <patchvec/error.h>

namespace pv::nn {
namespace {

namespace F = torch::nn::functional;

constexpr int kBottleneckExpansion = 4;

const std::vector<ResNetSpec>& specs() {
  static const std::vector<ResNetSpec> all = {
      {"resnet18", BlockKind::kBasic, {2, 2, 2}, 64},
      {"resnet50", BlockKind::kBottleneck, {3, 4, 6}, 64},
      {"wide_resnet50_2", BlockKind::kBottleneck, {3, 4, 6}, 128},
  };
  return all;
}

int expansion(BlockKind kind) {
  return kind == BlockKind::kBottleneck ? kBottleneckExpansion : 1;
}

torch::nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel,
                       std::int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

torch::nn::BatchNorm2d batch_norm(std::int64_t channels) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).eps(1e-5).momentum(0.1));
}

torch::nn::Sequential make_layer(torch::nn::Module& parent, const char* name,
                                 const ResNetSpec& spec, std::int64_t& in_channels,
                                 std::int64_t planes, int blocks, std::int64_t stride) {
  torch::nn::Sequential layer;
  for (int i = 0; i < blocks; ++i) {
    layer->push_back(
        ResidualBlock(spec.block, in_channels, planes, i == 0 ? stride : 1, spec.width_per_group));
    in_channels = planes * expansion(spec.block);
  }
  return parent.register_module(name, layer);
}

}  // namespace

const ResNetSpec& resnet_spec(std::string_view name) {
  for (const auto& spec : specs()) {
    if (spec.name == name) return spec;
  }
  std::string known;
  for (const auto& spec : specs()) known += (known.empty() ? "" : ", ") + spec.name;
  throw Error("unknown backbone " + std::string(name) + " (supported: " + known + ")");
}

std::vector<std::string> backbone_names() {
  std::vector<std::string> names;
  for (const auto& spec : specs()) names.push_back(spec.name);
  return names;
}

std::array<std::int64_t, 2> feature_channels(const ResNetSpec& spec) {
  const std::int64_t e = expansion(spec.block);
  return {128 * e, 256 * e};
}

ResidualBlockImpl::ResidualBlockImpl(BlockKind kind, std::int64_t in_channels, std::int64_t planes,
                                     std::int64_t stride, int width_per_group)
    : kind(kind) {
  const std::int64_t out_channels = planes * expansion(kind);
  if (kind == BlockKind::kBasic) {
    convs = {conv(in_channels, planes, 3, stride), conv(planes, planes, 3, 1)};
    bns = {batch_norm(planes), batch_norm(planes)};
  } else {
    const std::int64_t width = planes * width_per_group / 64;
    convs = {conv(in_channels, width, 1, 1), conv(width, width, 3, stride),
             conv(width, out_channels, 1, 1)};
    bns = {batch_norm(width), batch_norm(width), batch_norm(out_channels)};
  }
  for (std::size_t i = 0; i < convs.size(); ++i) {
    register_module("conv" + std::to_string(i + 1), convs[i]);
    register_module("bn" + std::to_string(i + 1), bns[i]);
  }
  if (stride != 1 || in_channels != out_channels) {
    downsample = register_module("downsample",
                                 torch::nn::Sequential(conv(in_channels, out_channels, 1, stride),
                                                       batch_norm(out_channels)));
  }
}

torch::Tensor ResidualBlockImpl::forward(torch::Tensor x) {
  torch::Tensor out = x;
  for (std::size_t i = 0; i < convs.size(); ++i) {
    out = bns[i]->forward(convs[i]->forward(out));
    if (i + 1 < convs.size()) out = torch::relu(out);
  }
  const torch::Tensor identity = downsample ? downsample->forward(x) : x;
  return torch::relu(out + identity);
}

ResNetImpl::ResNetImpl(const ResNetSpec& spec) : spec(spec) {
  conv1 = register_module(
      "conv1",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
  bn1 = register_module("bn1", batch_norm(64));
  std::int64_t channels = 64;
  layer1 = make_layer(*this, "layer1", spec, channels, 64, spec.blocks[0], 1);
  layer2 = make_layer(*this, "layer2", spec, channels, 128, spec.blocks[1], 2);
  layer3 = make_layer(*this, "layer3", spec, channels, 256, spec.blocks[2], 2);
}

Features ResNetImpl::forward(torch::Tensor x) {
  x = torch::relu(bn1->forward(conv1->forward(x)));
  x = F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2).padding(1));
  x = layer1->forward(x);
  Features features;
  features.layer2 = layer2->forward(x);
  features.layer3 = layer3->forward(features.layer2);
  return features;
}

void ResNetImpl::reset_parameters(std::uint64_t seed) {
  torch::manual_seed(seed);
  const torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* c = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
      bn->reset_running_stats();
    }
  }
}

void ResNetImpl::reestimate_batchnorm(
    const std::function<std::optional<torch::Tensor>()>& next_batch) {
  std::vector<torch::nn::BatchNorm2dImpl*> norms;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* bn = module->as<torch::nn::BatchNorm2d>()) norms.push_back(bn);
  }
  for (auto* bn : norms) {
    bn->reset_running_stats();
    bn->options.momentum(c10::nullopt);  // cumulative average over batches
  }
  train();
  {
    const torch::NoGradGuard no_grad;
    while (const auto batch = next_batch()) forward(*batch);
  }
  eval();
  for (auto* bn : norms) bn->options.momentum(0.1);
}

}  // namespace pv::nn
