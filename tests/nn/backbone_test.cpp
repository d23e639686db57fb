// Parity of our ResNets and patch embeddings with torchvision + anomalib on seeded random weights.
#include <limits>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <torch/utils.h>

#include <patchvec/embedder.h>
#include <patchvec/error.h>
#include <patchvec/precision.h>

#include "nn/fused_resnet.h"
#include "nn/patch_features.h"
#include "nn/reference.h"
#include "nn/resnet.h"

namespace pv::nn {
namespace {

class Backbone : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    at::set_num_threads(2);
    network_ = testing::fixture_backbone(GetParam());
    batch_ = testing::reference_batch();
  }
  void expect_matches_reference(const Features& features) {
    const std::string name = GetParam();
    const double layer2 =
        testing::relative_error(features.layer2, testing::load_reference(name + "_layer2.npy"));
    const double layer3 =
        testing::relative_error(features.layer3, testing::load_reference(name + "_layer3.npy"));
    const double embedding =
        testing::relative_error(patch_embeddings(features.layer2, features.layer3),
                                testing::load_reference(name + "_embedding.npy"));
    EXPECT_LT(layer2, testing::kParityTolerance);
    EXPECT_LT(layer3, testing::kParityTolerance);
    EXPECT_LT(embedding, testing::kParityTolerance);
    RecordProperty("relative_error_embedding", std::to_string(embedding));
  }

  ResNet network_{nullptr};
  at::Tensor batch_;
};

TEST_P(Backbone, ModuleMatchesTorchvision) {
  const torch::NoGradGuard no_grad;
  expect_matches_reference(network_->forward(batch_));
}

TEST_P(Backbone, FusedInferenceFormMatchesTorchvision) {
  const at::InferenceMode inference;
  const FusedResNet fused(*network_);
  expect_matches_reference(fused.forward(batch_));
}

// Reduced precisions: the patch embeddings against torchvision's float32 ones, within the
// tolerance each precision promises (max |difference| / max |reference|), and really computed in
// that precision (the int8 form's layers come out of quantised tensors).
double reduced_embedding_error(const FusedResNet& fused, const at::Tensor& batch,
                               Precision precision, const std::string& name) {
  const nn::Features features = fused.forward(batch, precision);
  EXPECT_EQ(features.layer2.scalar_type(), at::kFloat);
  return testing::relative_error(patch_embeddings(features.layer2, features.layer3),
                                 testing::load_reference(name + "_embedding.npy"));
}

TEST_P(Backbone, Bf16FormStaysWithinTwoPercentOfTorchvision) {
  if (!precision_unsupported(Precision::kBFloat16).empty()) {
    GTEST_SKIP() << precision_unsupported(Precision::kBFloat16);
  }
  const at::InferenceMode inference;
  FusedResNet fused(*network_);
  EXPECT_FALSE(fused.prepared(Precision::kBFloat16));
  EXPECT_THROW(fused.forward(batch_, Precision::kBFloat16), Error);
  fused.prepare(Precision::kBFloat16);
  const double error = reduced_embedding_error(fused, batch_, Precision::kBFloat16, GetParam());
  RecordProperty("relative_error_bf16", std::to_string(error));
  EXPECT_LT(error, 0.02);
  EXPECT_GT(error, testing::kParityTolerance);      // it is not the float32 form in disguise
  expect_matches_reference(fused.forward(batch_));  // the float32 form is still exact
}

TEST_P(Backbone, Int8FormStaysWithinFivePercentOfTorchvision) {
  if (!precision_unsupported(Precision::kInt8).empty()) {
    GTEST_SKIP() << precision_unsupported(Precision::kInt8);
  }
  const at::InferenceMode inference;
  FusedResNet fused(*network_);
  EXPECT_THROW(fused.prepare(Precision::kInt8), Error);  // no ranges
  ActivationRanges ranges;
  fused.measure(batch_, ranges);
  EXPECT_EQ(ranges.min.size(), fused.quantised_tensors());
  ActivationRanges wrong = ranges;
  wrong.max.pop_back();
  wrong.min.pop_back();
  EXPECT_THROW(fused.prepare(Precision::kInt8, &wrong), Error);
  wrong = ranges;
  wrong.max[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(fused.prepare(Precision::kInt8, &wrong), Error);
  for (float& v : ranges.min) v *= kInt8Headroom;  // as the embedder widens them
  for (float& v : ranges.max) v *= kInt8Headroom;
  EXPECT_THROW(fused.prepare(Precision::kInt8, &ranges, 6), Error);  // the stem's 7 or 8 bits
  fused.prepare(Precision::kInt8, &ranges);
  std::int64_t recomputed = 0;
  const nn::Features features = fused.forward(batch_, Precision::kInt8, &recomputed);
  EXPECT_EQ(recomputed, 0);
  const double error =
      testing::relative_error(patch_embeddings(features.layer2, features.layer3),
                              testing::load_reference(GetParam() + "_embedding.npy"));
  RecordProperty("relative_error_int8", std::to_string(error));
  EXPECT_LT(error, 0.05);
  EXPECT_GT(error, testing::kParityTolerance);

  // Images beyond the calibrated ranges (here: three times the contrast) are computed again in
  // float32, exactly, whatever else shares their batch.
  const at::Tensor mixed = at::cat({batch_.narrow(0, 0, 1) * 3, batch_.narrow(0, 1, 1)});
  recomputed = 0;
  const nn::Features q = fused.forward(mixed, Precision::kInt8, &recomputed);
  const nn::Features f = fused.forward(mixed);
  EXPECT_EQ(recomputed, 1);
  EXPECT_TRUE(at::equal(q.layer3[0], f.layer3[0]));
  EXPECT_FALSE(at::equal(q.layer3[1], f.layer3[1]));

  // forward() on many threads at once (the service's and the station's threads share a model):
  // the same features as one at a time.
  std::vector<at::Tensor> outputs(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < outputs.size(); ++t) {
    threads.emplace_back([&, t] {
      const at::InferenceMode guard;
      for (int i = 0; i < 3; ++i) outputs[t] = fused.forward(batch_, Precision::kInt8).layer3;
    });
  }
  for (auto& thread : threads) thread.join();
  for (const at::Tensor& output : outputs) EXPECT_TRUE(at::equal(output, features.layer3));
}

TEST_P(Backbone, EmbeddingShapeIs28x28) {
  const at::Tensor embedding = testing::load_reference(GetParam() + "_embedding.npy");
  const auto channels = feature_channels(network_->spec);
  EXPECT_EQ(embedding.size(1), channels[0] + channels[1]);
  EXPECT_EQ(embedding.size(2), 28);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, Backbone, ::testing::Values("resnet18", "wide_resnet50_2"));

TEST(ResNetStructure, ParameterNamesAreTorchvisions) {
  const ResNet network(resnet_spec("wide_resnet50_2"));
  const auto parameters = network->named_parameters();
  EXPECT_TRUE(parameters.contains("layer3.5.conv3.weight"));
  EXPECT_TRUE(parameters.contains("layer2.0.downsample.0.weight"));
  EXPECT_EQ(parameters["layer2.0.conv2.weight"].sizes(),
            (std::vector<std::int64_t>{256, 256, 3, 3}));
  EXPECT_FALSE(parameters.contains("layer4.0.conv1.weight"));
  EXPECT_TRUE(network->named_buffers().contains("bn1.num_batches_tracked"));
}

TEST(ResNetStructure, TorchvisionInitialisationIsSeededKaimingFanOut) {
  ResNet a(resnet_spec("resnet18"));
  ResNet b(resnet_spec("resnet18"));
  a->reset_parameters(11);
  b->reset_parameters(11);
  EXPECT_TRUE(at::equal(a->layer3[0]->as<ResidualBlockImpl>()->convs[0]->weight,
                        b->layer3[0]->as<ResidualBlockImpl>()->convs[0]->weight));
  b->reset_parameters(12);
  EXPECT_FALSE(at::equal(a->conv1->weight, b->conv1->weight));
  // kaiming_normal_(mode=fan_out, relu): std = sqrt(2 / (out_channels * k * k)).
  const at::Tensor w = a->layer3[0]->as<ResidualBlockImpl>()->convs[1]->weight;  // 256x256x3x3
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / (256 * 9)), 0.002);
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.001);
  EXPECT_TRUE(at::equal(a->bn1->weight, at::ones({64})));
  EXPECT_TRUE(at::equal(a->bn1->running_var, at::ones({64})));
}

TEST(ResNetStructure, UnknownBackboneListsTheKnownOnes) {
  try {
    resnet_spec("vit_b_16");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("wide_resnet50_2"), std::string::npos);
  }
}

}  // namespace
}  // namespace pv::nn
