// The inference form of a ResNet: every BatchNorm folded into the convolution before it and every
// weight stored channels-last, so that a forward pass is a chain of oneDNN convolutions with bias,
// ReLU and residual adds. Same outputs as ResNetImpl in eval mode (to float rounding), ~1.4x
// faster on a CPU.
//
// Reduced precisions (pv::Precision) are further forms of the same folded weights, prepared on
// demand: bf16 (weights and activations in bfloat16, float32 accumulation inside oneDNN) and int8
// (oneDNN's quantised convolutions: weights with one symmetric scale per output channel, 8 bits
// and the stem's 7 as pv::kInt8StemWeightBits explains, activations with one affine scale per
// tensor from ranges measured on calibration images by the float32 form). Features always come
// out in float32. An image whose activations reach the end of an int8 range anywhere (outside
// what the calibration images showed: a defect, most likely) is computed again in float32, so
// that clipping never lowers its score.
//
// Thread-safety: immutable once prepared; forward() may run on many threads at once. prepare()
// and measure() must not overlap with anything else.
#pragma once

#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include <patchvec/precision.h>

#include "nn/resnet.h"

template <int kSpatialDim>
struct ConvPackedParamsBase;

namespace pv::nn {

// The value range of every tensor the int8 form quantises, in the order forward() meets them:
// the input, the stem's output, then per block each convolution's output, the downsample's and
// the block's. Measured on calibration batches: the least and greatest value any of them gave.
struct ActivationRanges {
  std::vector<float> min;
  std::vector<float> max;
  std::int64_t batches = 0;
};

class FusedResNet {
 public:
  // Snapshot of `source`'s current weights and BatchNorm statistics (the float32 form).
  explicit FusedResNet(ResNetImpl& source);
  ~FusedResNet();
  FusedResNet(const FusedResNet&) = delete;
  FusedResNet& operator=(const FusedResNet&) = delete;

  // Builds the form of `precision` (int8 needs `ranges` from measure(), and throws pv::Error when
  // they do not fit this network; the stem's weights get `int8_stem_weight_bits` bits, 7 or 8).
  // Does not check that the CPU runs it natively.
  void prepare(Precision precision, const ActivationRanges* ranges = nullptr,
               int int8_stem_weight_bits = kInt8StemWeightBits);
  bool prepared(Precision precision) const;

  // Runs the float32 form on `images` and folds each quantised tensor's range into `ranges`.
  void measure(const at::Tensor& images, ActivationRanges& ranges) const;

  // `images` is N x 3 x H x W, ImageNet-normalised. Requires prepared(precision) (fp32 always
  // is). Features are float32. int8: adds to `recomputed` the images computed again in float32.
  Features forward(const at::Tensor& images, Precision precision = Precision::kFloat32,
                   std::int64_t* recomputed = nullptr) const;

  // How many tensors the int8 form quantises (ActivationRanges' length).
  std::size_t quantised_tensors() const;

 private:
  struct Conv {
    at::Tensor weight;  // BatchNorm folded in, channels-last
    at::Tensor bias;
    std::int64_t stride = 1;
    std::int64_t padding = 0;
  };
  struct Block {
    std::vector<Conv> convs;
    std::optional<Conv> downsample;
  };
  struct QuantisedConv {
    c10::intrusive_ptr<ConvPackedParamsBase<2>> packed;
    double scale = 1;  // of its output
    std::int64_t zero_point = 0;
  };
  struct QuantisedBlock {
    std::vector<QuantisedConv> convs;
    std::optional<QuantisedConv> downsample;
    double scale = 1;  // of the block's output (after the residual add and ReLU)
    std::int64_t zero_point = 0;
  };
  struct Quantised {
    double input_scale = 1;
    std::int64_t input_zero_point = 0;
    QuantisedConv stem;
    std::vector<QuantisedBlock> layer1, layer2, layer3;
  };
  class Recorder;

  static Conv fold(torch::nn::Conv2dImpl& conv, torch::nn::BatchNorm2dImpl& bn);
  static std::vector<Block> fold_layer(torch::nn::Sequential& layer);
  static at::Tensor run_layer(const std::vector<Block>& layer, at::Tensor x, Recorder* record);
  static at::Tensor run_quantised(const std::vector<QuantisedBlock>& layer, at::Tensor x,
                                  std::vector<char>& saturated);
  Features forward_float(const at::Tensor& images, Precision precision, Recorder* record) const;
  Features forward_int8(const at::Tensor& images, std::int64_t* recomputed) const;
  void quantise(const ActivationRanges& ranges, int stem_weight_bits);

  Conv stem_;
  std::vector<Block> layer1_, layer2_, layer3_;
  // bf16: the same chain with these weights (empty until prepared).
  Conv stem_bf16_;
  std::vector<Block> layer1_bf16_, layer2_bf16_, layer3_bf16_;
  std::optional<Quantised> int8_;
};

}  // namespace pv::nn
