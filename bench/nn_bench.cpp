// Where the time of an embedding goes: decoding, preprocessing, the backbone, patch features.
// Backbones use seeded random weights (speed does not depend on the values).
#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/utils.h>

#include <patchvec/embedder.h>
#include <patchvec/image.h>
#include <patchvec/precision.h>

#include "nn/fused_resnet.h"
#include "nn/patch_features.h"
#include "nn/preprocess.h"
#include "nn/resnet.h"

namespace pv {
namespace {

void use_all_cores() {
  at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
}

std::vector<std::byte> sample_png(int size) {
  cv::Mat image(size, size, CV_8UC3);
  cv::randu(image, 0, 255);
  cv::GaussianBlur(image, image, {0, 0}, 3);  // surface-like, compresses like a photo
  std::vector<unsigned char> bytes;
  cv::imencode(".png", image, bytes);
  const auto* begin = reinterpret_cast<const std::byte*>(bytes.data());
  return {begin, begin + bytes.size()};
}

void BM_DecodePng(benchmark::State& state) {
  const auto bytes = sample_png(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(decode_image(bytes, "bench"));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodePng)->Arg(1024)->Unit(benchmark::kMillisecond);

void BM_Preprocess(benchmark::State& state) {
  const Image image = decode_image(sample_png(static_cast<int>(state.range(0))), "bench");
  for (auto _ : state) benchmark::DoNotOptimize(nn::preprocess(image, {}));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Preprocess)->Arg(1024)->Unit(benchmark::kMillisecond);

// One forward pass of a batch of 8 through stem..layer3 plus the patch features.
void BM_Backbone(benchmark::State& state, const char* name, bool use_fused) {
  use_all_cores();
  nn::ResNet network(nn::resnet_spec(name));
  network->reset_parameters(0);
  network->eval();
  const nn::FusedResNet fused(*network);
  const at::Tensor batch = at::randn({8, 3, 224, 224});
  const at::InferenceMode inference;
  for (auto _ : state) {
    const nn::Features f = use_fused ? fused.forward(batch) : network->forward(batch);
    benchmark::DoNotOptimize(nn::patch_embeddings(f.layer2, f.layer3));
  }
  state.SetItemsProcessed(state.iterations() * 8);
}
BENCHMARK_CAPTURE(BM_Backbone, wide_resnet50_2_fused, "wide_resnet50_2", true)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(5)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Backbone, wide_resnet50_2_module, "wide_resnet50_2", false)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(5)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Backbone, resnet18_fused, "resnet18", true)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2)
    ->UseRealTime();

// The fused form at each precision (pv::Precision), batch of state.range(0) images. int8's
// activation ranges come from the same random images, widened as the embedder widens them (so
// that none is handed to float32; speed does not depend on the values otherwise).
void BM_Precision(benchmark::State& state, const char* name, Precision precision) {
  use_all_cores();
  if (!precision_unsupported(precision).empty()) {
    state.SkipWithError(precision_unsupported(precision).c_str());
    return;
  }
  nn::ResNet network(nn::resnet_spec(name));
  network->reset_parameters(0);
  network->eval();
  nn::FusedResNet fused(*network);
  const at::Tensor batch = at::randn({state.range(0), 3, 224, 224});
  nn::ActivationRanges ranges;
  fused.measure(batch, ranges);
  for (float& v : ranges.min) v *= kInt8Headroom;
  for (float& v : ranges.max) v *= kInt8Headroom;
  fused.prepare(precision, &ranges);
  const at::InferenceMode inference;
  for (auto _ : state) {
    const nn::Features f = fused.forward(batch, precision);
    benchmark::DoNotOptimize(nn::patch_embeddings(f.layer2, f.layer3));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK_CAPTURE(BM_Precision, wide_resnet50_2_fp32, "wide_resnet50_2", Precision::kFloat32)
    ->Arg(1)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Precision, wide_resnet50_2_bf16, "wide_resnet50_2", Precision::kBFloat16)
    ->Arg(1)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Precision, wide_resnet50_2_int8, "wide_resnet50_2", Precision::kInt8)
    ->Arg(1)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Precision, resnet18_fp32, "resnet18", Precision::kFloat32)
    ->Arg(1)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Precision, resnet18_bf16, "resnet18", Precision::kBFloat16)
    ->Arg(1)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Precision, resnet18_int8, "resnet18", Precision::kInt8)
    ->Arg(1)
    ->Arg(8)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2)
    ->UseRealTime();

}  // namespace
}  // namespace pv

BENCHMARK_MAIN();
