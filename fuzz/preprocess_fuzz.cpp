// Bytes to network inputs, as predict and the service go: decoding, then the antialiased resize
// and centre crop, or the scaling and cutting into tiles. The memory on the way must stay within
// a small multiple of the decoded image whatever its aspect: scripts/fuzz.sh runs this target
// under -rss_limit_mb=1024, so an image whose few bytes ask for gigabytes (a 1 x 1,000,000 PNG
// once made the resize allocate 3 GB) is a finding.
#include <cstdint>
#include <cstdlib>

#include <ATen/ATen.h>

#include <patchvec/image.h>

#include "fuzzing.h"
#include "nn/preprocess.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first byte picks the preprocessing: odd, tiles of 32 to 63 pixels at a scale of 0.25 to
  // 1.0 (bits 6-7); even, resize to 64 and crop to 56 (smaller than a model's, the same code).
  const std::uint8_t mode = data[0];
  const auto bytes = pv::fuzzing::bytes_of(data + 1, size - 1);
  try {
    const pv::Image image = pv::decode_image(bytes, "fuzz", {.max_pixels = 1'000'000});
    pv::nn::PreprocessOptions options{.image_size = 64, .crop_size = 56};
    if (mode & 1) {
      options.tiling = {
          .size = 32 + (mode >> 1) % 32, .overlap = 8, .scale = 0.25 * (1 + (mode >> 6))};
    }
    pv::TileLayout layout;
    const at::Tensor inputs = pv::nn::preprocess_inputs(image, options, &layout);
    const auto side = options.output_size();
    if (inputs.dim() != 4 || inputs.size(1) != 3 || inputs.size(2) != side ||
        inputs.size(3) != side || !at::isfinite(inputs).all().item<bool>()) {
      std::abort();  // inputs the network cannot take
    }
  } catch (const pv::Error&) {
  }
  return 0;
}
