#include "nn/weights.h"

#include <map>

#include <gtest/gtest.h>

#include <patchvec/error.h>

#include "nn/reference.h"
#include "nn/resnet.h"
#include "nn/safetensors.h"

namespace pv::nn {
namespace {

const std::vector<std::string> kIgnored = {"fc.", "layer4."};

// The tensors of the resnet18 fixture file, editable, and a writer for variants of them.
class WeightsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    const SafetensorsFile file(testing::nn_fixtures() / "resnet18.safetensors");
    for (const auto& [name, entry] : file.tensors()) {
      if (entry.dtype != DType::kF32) continue;  // num_batches_tracked
      std::vector<float> values(entry.bytes.size() / sizeof(float));
      std::memcpy(values.data(), entry.bytes.data(), entry.bytes.size());
      tensors_[name] = {entry.shape, std::move(values)};
    }
  }

  std::filesystem::path write(const std::string& name) {
    std::map<std::string, FloatTensor> views;
    for (const auto& [key, tensor] : tensors_) views[key] = {tensor.first, tensor.second};
    const auto path = dir_ / name;
    write_safetensors(path, views);
    return path;
  }

  std::string error_loading(const std::filesystem::path& path) {
    ResNet network(resnet_spec("resnet18"));
    try {
      load_weights(*network, TensorFile(path), kIgnored);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  std::map<std::string, std::pair<std::vector<std::int64_t>, std::vector<float>>> tensors_;
  testing::TempDir dir_;
};

TEST_F(WeightsFile, LoadsTorchvisionStateDict) {
  ResNet network(resnet_spec("resnet18"));
  const WeightsReport report =
      load_weights(*network, TensorFile(testing::nn_fixtures() / "resnet18.safetensors"), kIgnored);
  std::size_t counters = 0;  // num_batches_tracked buffers are not loaded
  for (const auto& item : network->named_buffers())
    counters += item.key().ends_with("num_batches_tracked");
  EXPECT_EQ(counters, 15u);
  EXPECT_EQ(report.loaded,
            network->named_parameters().size() + network->named_buffers().size() - counters);
  EXPECT_GT(report.ignored, 2u);  // fc.weight, fc.bias and all of layer4
  const SafetensorsFile file(testing::nn_fixtures() / "resnet18.safetensors");
  const auto& entry = file.tensors().at("layer3.1.bn2.running_var");
  const auto expected =
      at::from_blob(const_cast<std::byte*>(entry.bytes.data()), entry.shape, at::kFloat);
  EXPECT_TRUE(at::equal(network->named_buffers()["layer3.1.bn2.running_var"], expected));
}

TEST_F(WeightsFile, MissingKeyIsNamed) {
  tensors_.erase("layer2.0.downsample.1.running_mean");
  const auto message = error_loading(write("missing.safetensors"));
  EXPECT_NE(message.find("missing.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("missing key layer2.0.downsample.1.running_mean (expected shape [128])"),
            std::string::npos)
      << message;
}

TEST_F(WeightsFile, WrongShapeIsNamedWithBothShapes) {
  tensors_["layer3.0.conv1.weight"] = {{256, 64, 3, 3}, std::vector<float>(256 * 64 * 9)};
  const auto message = error_loading(write("shape.safetensors"));
  EXPECT_NE(message.find(
                "key layer3.0.conv1.weight has shape [256, 64, 3, 3], expected [256, 128, 3, 3]"),
            std::string::npos)
      << message;
}

TEST_F(WeightsFile, UnexpectedKeyIsNamed) {
  tensors_["classifier.weight"] = {{2}, {1.f, 2.f}};
  const auto message = error_loading(write("extra.safetensors"));
  EXPECT_NE(message.find("unexpected key classifier.weight [2]"), std::string::npos) << message;
}

TEST_F(WeightsFile, WrongBackboneListsManyProblemsBriefly) {
  ResNet wide(resnet_spec("wide_resnet50_2"));
  try {
    load_weights(*wide, TensorFile(testing::nn_fixtures() / "resnet18.safetensors"), kIgnored);
    FAIL();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("does not fit backbone"), std::string::npos);
    EXPECT_NE(message.find("more"), std::string::npos);  // truncated list, not a wall of text
    EXPECT_LT(message.size(), 2000u);
  }
}

TEST_F(WeightsFile, FailedLoadLeavesTheModuleUntouched) {
  ResNet network(resnet_spec("resnet18"));
  network->reset_parameters(7);
  const at::Tensor before = network->conv1->weight.clone();
  tensors_.erase("layer3.1.bn2.bias");
  EXPECT_THROW(load_weights(*network, TensorFile(write("partial.safetensors")), kIgnored), Error);
  EXPECT_TRUE(at::equal(network->conv1->weight, before));
}

TEST_F(WeightsFile, TruncatedFile) {
  const auto path = dir_ / "cut.safetensors";
  std::filesystem::copy_file(testing::nn_fixtures() / "resnet18.safetensors", path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  const auto message = error_loading(path);
  EXPECT_NE(message.find("cut.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST_F(WeightsFile, NotASafetensorsFile) {
  testing::write_text(dir_ / "model.pth", "PK\x03\x04 a zip archive from torch.save");
  EXPECT_NE(error_loading(dir_ / "model.pth").find("model.pth"), std::string::npos);
}

class HalfPrecision : public ::testing::TestWithParam<std::pair<std::string, at::ScalarType>> {};

TEST_P(HalfPrecision, LoadsAsRoundedFloat32) {
  const auto& [suffix, type] = GetParam();
  ResNet half(resnet_spec("resnet18"));
  load_weights(*half, TensorFile(testing::nn_fixtures() / ("resnet18_" + suffix + ".safetensors")),
               kIgnored);
  const ResNet full = testing::fixture_backbone("resnet18");
  const auto full_state = full->named_parameters();
  for (const auto& item : half->named_parameters()) {
    const at::Tensor expected = full_state[item.key()].to(type).to(at::kFloat);
    ASSERT_EQ(item.value().scalar_type(), at::kFloat);
    ASSERT_TRUE(at::equal(item.value(), expected)) << item.key();
  }
}

INSTANTIATE_TEST_SUITE_P(Types, HalfPrecision,
                         ::testing::Values(std::make_pair(std::string("f16"), at::kHalf),
                                           std::make_pair(std::string("bf16"), at::kBFloat16)),
                         [](const auto& info) { return info.param.first; });

TEST(SaveSafetensors, RoundTripsAModule) {
  testing::TempDir dir;
  ResNet source(resnet_spec("resnet18"));
  source->reset_parameters(3);
  save_safetensors(*source, dir / "saved.safetensors");
  ResNet copy(resnet_spec("resnet18"));
  load_weights(*copy, TensorFile(dir / "saved.safetensors"), {});
  EXPECT_TRUE(at::equal(copy->layer3[1]->as<ResidualBlockImpl>()->convs[1]->weight,
                        source->layer3[1]->as<ResidualBlockImpl>()->convs[1]->weight));
}

}  // namespace
}  // namespace pv::nn
