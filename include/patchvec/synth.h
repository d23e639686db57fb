// Procedural flat-surface datasets in the MVTec AD layout, for demos and tests when the real
// dataset is not at hand: three textures like MVTec's (tile, leather, grid), each image varied
// (layout, grain, lighting, small shifts and rotations), and defects in MVTec's spirit with
// pixel-exact ground-truth masks.
//
// Every image is a pure function of (category, defect, stream, index, size, seed): changing how
// many images are written does not change the ones that were already there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <patchvec/image.h>

namespace pv::synth {

// "grid", "leather", "tile".
std::vector<std::string> category_names();

// The defect types of a synthetic category (MVTec AD's names), sorted. Throws pv::Error for an
// unknown category.
std::vector<std::string> defect_types(std::string_view category);

struct SurfaceSpec {
  std::string category;
  std::string defect = "good";   // "good" or one of defect_types(category)
  std::string stream = "train";  // independent sequences: "train", "test", "query", ...
  int index = 0;
  int size = 256;  // square, pixels
  std::uint64_t seed = 0;
  // Defects drawn as on an image of size * defect_scale pixels, placed in a window of that side:
  // 0.125 on a 1024-pixel image gives the defects of a 128-pixel one, a few pixels across, which
  // resizing the image to 256 all but erases (the case for tiling). 1 = defects at full scale.
  // Tile and leather only (grid's wires are drawn over the whole surface). The window is at least
  // 64 pixels.
  double defect_scale = 1.0;
};

struct Surface {
  Image image;                     // as written to PNG (8-bit values / 255)
  Image clean;                     // the same surface without the defect
  std::vector<std::uint8_t> mask;  // size x size, 255 = defect; empty for "good"
};

// Throws pv::Error for an unknown category or defect, or a size below 64.
Surface render(const SurfaceSpec& spec);

struct DatasetOptions {
  std::vector<std::string> categories = category_names();
  int train = 60;      // defect-free training images per category
  int test_good = 12;  // defect-free test images per category
  int test_bad = 5;    // test images per defect type
  int size = 256;
  std::uint64_t seed = 0;
  double defect_scale = 1.0;  // SurfaceSpec::defect_scale
};

// The options as the JSON text stored in <root>/synth.json.
std::string describe(const DatasetOptions& options);

// Writes <root>/<category>/{train/good, test/<defect>, ground_truth/<defect>} with a progress bar,
// then <root>/synth.json. Existing files are overwritten. Returns the number of images written.
std::int64_t write_dataset(const std::filesystem::path& root, const DatasetOptions& options);

// True if <root>/synth.json exists and records exactly these options (a complete earlier run).
bool dataset_matches(const std::filesystem::path& root, const DatasetOptions& options);

}  // namespace pv::synth
