// BatchNorm re-estimation against torch.optim.swa_utils.update_bn on the same batches.
#include <gtest/gtest.h>

#include "nn/reference.h"
#include "nn/resnet.h"
#include "nn/safetensors.h"

namespace pv::nn {
namespace {

class Calibration : public ::testing::TestWithParam<std::string> {};

TEST_P(Calibration, MatchesUpdateBn) {
  at::set_num_threads(2);
  ResNet network = testing::fixture_backbone(GetParam());
  const at::Tensor batch = testing::reference_batch();
  constexpr std::int64_t kBatch = 4;  // as the generator
  std::int64_t start = 0;
  network->reestimate_batchnorm([&]() -> std::optional<at::Tensor> {
    if (start >= batch.size(0)) return std::nullopt;
    const auto size = std::min(kBatch, batch.size(0) - start);
    start += size;
    return batch.narrow(0, start - size, size);
  });
  EXPECT_FALSE(network->is_training());

  const SafetensorsFile reference(testing::nn_fixtures() /
                                  (GetParam() + "_calibrated.safetensors"));
  const auto buffers = network->named_buffers();
  double worst = 0;
  for (const auto& [name, entry] : reference.tensors()) {
    const auto expected =
        at::from_blob(const_cast<std::byte*>(entry.bytes.data()), entry.shape, at::kFloat);
    worst = std::max(worst, testing::relative_error(buffers[name], expected));
  }
  EXPECT_LT(worst, 1e-4);
  EXPECT_EQ(buffers["layer1.0.bn1.num_batches_tracked"].item<std::int64_t>(),
            (batch.size(0) + kBatch - 1) / kBatch);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, Calibration,
                         ::testing::Values("resnet18", "wide_resnet50_2"));

}  // namespace
}  // namespace pv::nn
