// Image headers and the PNG, JPEG and BMP decoders.
#include <cstdint>

#include <patchvec/image.h>

#include "fuzzing.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = pv::fuzzing::bytes_of(data, size);
  try {
    const pv::ImageHeader header = pv::read_image_header(bytes, "fuzz");
    if (header.width <= 0 || header.height <= 0) std::abort();
    // 1 megapixel: enough for every code path, small enough for many runs a second.
    const pv::Image image = pv::decode_image(bytes, "fuzz", {.max_pixels = 1'000'000});
    if (image.width != header.width || image.height != header.height ||
        image.pixels.size() != std::size_t(image.width) * image.height * 3) {
      std::abort();  // a decoder returned something its header did not announce
    }
    for (const float value : image.pixels) {
      if (!(value >= 0.0f && value <= 1.0f)) std::abort();
    }
  } catch (const pv::Error&) {
  }
  return 0;
}
