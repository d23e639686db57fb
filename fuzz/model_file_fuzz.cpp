// Model files (.pvm) whose checksum holds: the section table, the metadata, the bank against the
// metadata, and scoring with what was accepted (neighbour indices are used there).
#include <cstdint>

#include <ATen/ATen.h>

#include <patchvec/error.h>

#include "fuzzing.h"
#include "patchcore/anomaly_map.h"
#include "patchcore/model_file.h"
#include "patchcore/model_info.h"
#include "patchcore/scorer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::byte> bytes = pv::fuzzing::with_checksum(data, size);
  try {
    const auto contents = pv::patchcore::read_model_bytes(bytes, "fuzz.pvm");
    const pv::ModelInfo info = pv::patchcore::model_info_from(contents.metadata);
    pv::patchcore::check_contents(info, contents);
    const pv::patchcore::Scorer scorer(contents.bank,
                                       {.num_neighbors = info.options.num_neighbors});
    const auto& g = info.grid;
    if (g.height * g.width * g.dim <= (1 << 16)) {  // what a backbone would give, kept small
      const auto scores = scorer.score(at::rand({1, g.height, g.width, g.dim}));
      const int output = info.options.embedder.crop_size > 0 ? info.options.embedder.crop_size
                                                             : info.options.embedder.image_size;
      if (output <= 256) {
        pv::patchcore::anomaly_maps(scores.patch_distances,
                                    {.size = output, .sigma = info.options.sigma});
      }
    }
  } catch (const pv::Error&) {
  }
  return 0;
}
