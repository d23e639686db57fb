// Parity of our ResNets and patch embeddings with torchvision + anomalib on seeded random weights.
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <patchvec/error.h>

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
