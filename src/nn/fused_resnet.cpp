#include "nn/fused_resnet.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>
#include <torch/utils.h>

#include <patchvec/error.h>

namespace pv::nn {
namespace {

at::Tensor apply(const auto& conv, const at::Tensor& x) {
  return at::conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding);
}

// int8 needs oneDNN's quantised kernels (Debian's libtorch has no FBGEMM); process-wide.
void use_onednn_quantisation() {
  auto& context = at::globalContext();
  const auto engines = context.supportedQEngines();
  if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) == engines.end()) {
    throw Error("int8 needs libtorch's oneDNN quantised kernels, which this libtorch lacks");
  }
  if (context.qEngine() != at::QEngine::ONEDNN) context.setQEngine(at::QEngine::ONEDNN);
}

// The affine quint8 parameters covering [lo, hi] (widened to hold 0, which ReLU and padding use).
std::pair<double, std::int64_t> affine(float lo, float hi) {
  const double low = std::min(0.0f, lo);
  const double high = std::max(0.0f, hi);
  const double scale = std::max((high - low) / 255.0, 1e-8);
  const auto zero_point = std::clamp<std::int64_t>(std::llround(-low / scale), 0, 255);
  return {scale, zero_point};
}

c10::intrusive_ptr<ConvPackedParamsBase<2>> pack(const at::Tensor& weight, const at::Tensor& bias,
                                                 std::int64_t stride, std::int64_t padding,
                                                 int weight_bits) {
  // One symmetric scale per output channel: values in [-127, 127], or [-63, 63] with 7 bits.
  const double top = (1 << (weight_bits - 1)) - 1;
  const at::Tensor w = weight.contiguous();
  const at::Tensor scales =
      (w.abs().amax({1, 2, 3}) / top).clamp_min(1e-12).to(at::kDouble).contiguous();
  const at::Tensor quantised = at::quantize_per_channel(
      w, scales, at::zeros({w.size(0)}, at::kLong), /*axis=*/0, at::kQInt8);
  static const auto prepack =
      c10::Dispatcher::singleton().findSchemaOrThrow("quantized::conv2d_prepack", "");
  torch::jit::Stack stack{quantised,
                          bias,
                          c10::List<std::int64_t>({stride, stride}),
                          c10::List<std::int64_t>({padding, padding}),
                          c10::List<std::int64_t>({1, 1}),
                          std::int64_t{1}};
  prepack.callBoxed(&stack);
  return stack.at(0).toCustomClass<ConvPackedParamsBase<2>>();
}

// The least and greatest of `count` bytes (one pass; the compiler vectorises it).
__attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
std::pair<std::uint8_t, std::uint8_t>
byte_range(const std::uint8_t* bytes, std::int64_t count) {
  std::uint8_t low = 255, high = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    low = std::min(low, bytes[i]);
    high = std::max(high, bytes[i]);
  }
  return {low, high};
}

// Which images of a quantised batch hit the end of its range (255, or 0 where zero is not the
// bottom of the range: a clipped negative value), OR-ed into `saturated` (N bools). Reads the
// bytes in place: each image's values are one block of memory in either layout.
void mark_saturated(const at::Tensor& q, std::int64_t zero_point, std::vector<char>& saturated) {
  TORCH_INTERNAL_ASSERT(q.is_contiguous() || q.is_contiguous(at::MemoryFormat::ChannelsLast));
  const std::int64_t n = q.size(0);
  const std::int64_t per_image = q.numel() / std::max<std::int64_t>(n, 1);
  const auto* bytes = static_cast<const std::uint8_t*>(q.data_ptr());
  at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      if (saturated[static_cast<std::size_t>(i)] != 0) continue;  // computed again anyway
      const auto [low, high] = byte_range(bytes + i * per_image, per_image);
      if (high == 255 || (zero_point > 0 && low == 0)) saturated[static_cast<std::size_t>(i)] = 1;
    }
  });
}

at::Tensor add_relu(const at::Tensor& a, const at::Tensor& b, double scale,
                    std::int64_t zero_point) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("quantized::add_relu", "")
                             .typed<at::Tensor(at::Tensor, at::Tensor, double, std::int64_t)>();
  return op.call(a, b, scale, zero_point);
}

}  // namespace

// Folds each quantised tensor's range into ActivationRanges, in forward()'s order.
class FusedResNet::Recorder {
 public:
  explicit Recorder(ActivationRanges& ranges) : ranges_(ranges) {}
  void operator()(const at::Tensor& t) {
    const auto [lo, hi] = at::aminmax(t);
    const float low = lo.item<float>();
    const float high = hi.item<float>();
    if (ranges_.batches == 0) {
      ranges_.min.push_back(low);
      ranges_.max.push_back(high);
    } else {
      ranges_.min.at(next_) = std::min(ranges_.min.at(next_), low);
      ranges_.max.at(next_) = std::max(ranges_.max.at(next_), high);
    }
    ++next_;
  }

 private:
  ActivationRanges& ranges_;
  std::size_t next_ = 0;
};

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

FusedResNet::~FusedResNet() = default;

std::size_t FusedResNet::quantised_tensors() const {
  std::size_t count = 2;  // the input and the stem's output
  for (const auto* layer : {&layer1_, &layer2_, &layer3_}) {
    for (const auto& block : *layer) count += block.convs.size() + (block.downsample ? 1 : 0) + 1;
  }
  return count;
}

bool FusedResNet::prepared(Precision precision) const {
  switch (precision) {
    case Precision::kBFloat16:
      return stem_bf16_.weight.defined();
    case Precision::kInt8:
      return int8_.has_value();
    case Precision::kFloat32:
      break;
  }
  return true;
}

void FusedResNet::prepare(Precision precision, const ActivationRanges* ranges,
                          int int8_stem_weight_bits) {
  const at::InferenceMode inference;
  if (precision == Precision::kBFloat16 && !prepared(precision)) {
    const auto convert = [](const Conv& conv) {
      Conv half = conv;
      half.weight = conv.weight.to(at::kBFloat16).contiguous(at::MemoryFormat::ChannelsLast);
      half.bias = conv.bias.to(at::kBFloat16);
      return half;
    };
    const auto convert_layer = [&](const std::vector<Block>& layer) {
      std::vector<Block> out;
      for (const auto& block : layer) {
        Block half;
        for (const auto& conv : block.convs) half.convs.push_back(convert(conv));
        if (block.downsample) half.downsample = convert(*block.downsample);
        out.push_back(std::move(half));
      }
      return out;
    };
    layer1_bf16_ = convert_layer(layer1_);
    layer2_bf16_ = convert_layer(layer2_);
    layer3_bf16_ = convert_layer(layer3_);
    stem_bf16_ = convert(stem_);
  } else if (precision == Precision::kInt8) {
    if (ranges == nullptr || ranges->batches < 1) {
      throw Error("int8 needs activation ranges measured on calibration images");
    }
    if (int8_stem_weight_bits != 7 && int8_stem_weight_bits != 8) {
      throw Error("int8's stem weights have 7 or 8 bits, not " +
                  std::to_string(int8_stem_weight_bits));
    }
    quantise(*ranges, int8_stem_weight_bits);
  }
}

void FusedResNet::quantise(const ActivationRanges& ranges, int stem_weight_bits) {
  const std::size_t count = quantised_tensors();
  if (ranges.min.size() != count || ranges.max.size() != count) {
    throw Error("int8 activation ranges: " + std::to_string(ranges.min.size()) + " given, " +
                std::to_string(count) + " expected for this backbone");
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (!std::isfinite(ranges.min[i]) || !std::isfinite(ranges.max[i]) ||
        ranges.min[i] > ranges.max[i] || std::abs(ranges.min[i]) > 1e12f ||
        std::abs(ranges.max[i]) > 1e12f) {
      throw Error("int8 activation range " + std::to_string(i) + " is not a finite interval");
    }
  }
  use_onednn_quantisation();
  std::size_t next = 0;
  const auto take = [&] {
    const std::size_t i = next++;
    return affine(ranges.min[i], ranges.max[i]);
  };
  const auto quantise_conv = [&](const Conv& conv, int bits) {
    QuantisedConv q;
    q.packed = pack(conv.weight, conv.bias, conv.stride, conv.padding, bits);
    std::tie(q.scale, q.zero_point) = take();
    return q;
  };
  Quantised form;
  std::tie(form.input_scale, form.input_zero_point) = take();
  form.stem = quantise_conv(stem_, stem_weight_bits);
  const auto quantise_layer = [&](const std::vector<Block>& layer) {
    std::vector<QuantisedBlock> out;
    for (const auto& block : layer) {
      QuantisedBlock q;
      for (const auto& conv : block.convs) q.convs.push_back(quantise_conv(conv, 8));
      if (block.downsample) q.downsample = quantise_conv(*block.downsample, 8);
      std::tie(q.scale, q.zero_point) = take();
      out.push_back(std::move(q));
    }
    return out;
  };
  form.layer1 = quantise_layer(layer1_);
  form.layer2 = quantise_layer(layer2_);
  form.layer3 = quantise_layer(layer3_);
  int8_ = std::move(form);
}

at::Tensor FusedResNet::run_layer(const std::vector<Block>& layer, at::Tensor x, Recorder* record) {
  for (const auto& block : layer) {
    at::Tensor out = x;
    for (std::size_t i = 0; i < block.convs.size(); ++i) {
      out = apply(block.convs[i], out);
      if (i + 1 < block.convs.size()) out.relu_();
      if (record != nullptr) (*record)(out);
    }
    if (block.downsample) {
      const at::Tensor shortcut = apply(*block.downsample, x);
      if (record != nullptr) (*record)(shortcut);
      out.add_(shortcut).relu_();
    } else {
      out.add_(x).relu_();
    }
    if (record != nullptr) (*record)(out);
    x = std::move(out);
  }
  return x;
}

at::Tensor FusedResNet::run_quantised(const std::vector<QuantisedBlock>& layer, at::Tensor x,
                                      std::vector<char>& saturated) {
  for (const auto& block : layer) {
    at::Tensor out = x;
    for (std::size_t i = 0; i < block.convs.size(); ++i) {
      const QuantisedConv& conv = block.convs[i];
      out = i + 1 < block.convs.size() ? conv.packed->apply_relu(out, conv.scale, conv.zero_point)
                                       : conv.packed->apply(out, conv.scale, conv.zero_point);
      mark_saturated(out, conv.zero_point, saturated);
    }
    at::Tensor shortcut = x;
    if (block.downsample) {
      const QuantisedConv& conv = *block.downsample;
      shortcut = conv.packed->apply(x, conv.scale, conv.zero_point);
      mark_saturated(shortcut, conv.zero_point, saturated);
    }
    x = add_relu(out, shortcut, block.scale, block.zero_point);
    mark_saturated(x, block.zero_point, saturated);
  }
  return x;
}

Features FusedResNet::forward_float(const at::Tensor& images, Precision precision,
                                    Recorder* record) const {
  const bool half = precision == Precision::kBFloat16;
  const Conv& stem = half ? stem_bf16_ : stem_;
  at::Tensor x = images.contiguous(at::MemoryFormat::ChannelsLast);
  if (half) x = x.to(at::kBFloat16);
  if (record != nullptr) (*record)(x);
  x = apply(stem, x).relu_();
  if (record != nullptr) (*record)(x);
  x = at::max_pool2d(x, {3, 3}, {2, 2}, {1, 1}, {1, 1});
  x = run_layer(half ? layer1_bf16_ : layer1_, std::move(x), record);
  Features features;
  features.layer2 = run_layer(half ? layer2_bf16_ : layer2_, std::move(x), record);
  features.layer3 = run_layer(half ? layer3_bf16_ : layer3_, features.layer2, record);
  if (half) {
    features.layer2 = features.layer2.to(at::kFloat);
    features.layer3 = features.layer3.to(at::kFloat);
  }
  return features;
}

Features FusedResNet::forward_int8(const at::Tensor& images, std::int64_t* recomputed) const {
  const Quantised& q = *int8_;
  std::vector<char> saturated(static_cast<std::size_t>(images.size(0)), 0);
  at::Tensor x = at::quantize_per_tensor(images.contiguous(at::MemoryFormat::ChannelsLast),
                                         q.input_scale, q.input_zero_point, at::kQUInt8);
  mark_saturated(x, q.input_zero_point, saturated);
  x = q.stem.packed->apply_relu(x, q.stem.scale, q.stem.zero_point);
  mark_saturated(x, q.stem.zero_point, saturated);
  x = at::max_pool2d(x, {3, 3}, {2, 2}, {1, 1}, {1, 1});
  x = run_quantised(q.layer1, std::move(x), saturated);
  const at::Tensor layer2 = run_quantised(q.layer2, std::move(x), saturated);
  const at::Tensor layer3 = run_quantised(q.layer3, layer2, saturated);
  Features features{.layer2 = layer2.dequantize(), .layer3 = layer3.dequantize()};
  // An image that left the ranges measured on good images is unusual by definition (a defect,
  // most likely), and clipped its score would shrink: it is computed again in float32.
  std::vector<std::int64_t> indices;
  for (std::size_t i = 0; i < saturated.size(); ++i) {
    if (saturated[i] != 0) indices.push_back(static_cast<std::int64_t>(i));
  }
  const at::Tensor again = at::tensor(indices, at::kLong);
  if (recomputed != nullptr) *recomputed += again.numel();
  if (again.numel() > 0) {
    const Features exact =
        forward_float(images.index_select(0, again), Precision::kFloat32, nullptr);
    features.layer2 = features.layer2.contiguous(at::MemoryFormat::ChannelsLast);
    features.layer3 = features.layer3.contiguous(at::MemoryFormat::ChannelsLast);
    features.layer2.index_copy_(0, again, exact.layer2);
    features.layer3.index_copy_(0, again, exact.layer3);
  }
  return features;
}

void FusedResNet::measure(const at::Tensor& images, ActivationRanges& ranges) const {
  const at::InferenceMode inference;
  Recorder record(ranges);
  forward_float(images, Precision::kFloat32, &record);
  ++ranges.batches;
}

Features FusedResNet::forward(const at::Tensor& images, Precision precision,
                              std::int64_t* recomputed) const {
  if (!prepared(precision)) {
    throw Error(std::string("the backbone's ") + precision_name(precision) +
                " form was never prepared");
  }
  if (precision == Precision::kInt8) return forward_int8(images, recomputed);
  return forward_float(images, precision, nullptr);
}

}  // namespace pv::nn
