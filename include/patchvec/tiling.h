// Tiling for high-resolution images: instead of shrinking a whole image to the network's input
// size (where a defect of a few pixels disappears), the image is scaled by a factor (1 = its
// native resolution) and cut into square tiles that overlap; every tile goes through the backbone
// whole, and the tiles' maps are stitched back into one map of the scaled image.
#pragma once

#include <string>
#include <vector>

namespace pv {

struct TilingOptions {
  int size = 0;        // tile side in pixels of the scaled image; 0 = no tiling
  int overlap = 32;    // pixels two neighbouring tiles share at least (< size)
  double scale = 1.0;  // the image is resized by this factor before it is cut (0, 1]...(0, 4]
  bool enabled() const { return size > 0; }
};

// Throws pv::Error naming the setting (--tile, --tile-overlap, --tile-scale) for values that
// cannot work: a tile below 32 or above 4096 pixels, an overlap outside [0, size / 2], a scale
// outside (0, 4].
void validate(const TilingOptions& options);

// Where the tiles of one image lie. Tiles start every (size - overlap) pixels; the last tile of a
// row or column is moved back to end at the border, so tiles never leave the image and may share
// more than `overlap` pixels there. Tile t covers x in [xs[t % xs.size()], + size) and
// y in [ys[t / xs.size()], + size): row-major order.
struct TileLayout {
  int width = 0;   // of the scaled image
  int height = 0;  // of the scaled image
  int size = 0;
  std::vector<int> xs;
  std::vector<int> ys;
  std::size_t count() const { return xs.size() * ys.size(); }
};

// The layout for an image of width x height. Throws pv::Error when the scaled image is smaller
// than one tile in either direction (the message names the sizes and the settings to change).
TileLayout tile_layout(int width, int height, const TilingOptions& options);

// "tiles of 256 px, overlap 32, scale 0.5": for messages and reports.
std::string describe(const TilingOptions& options);

}  // namespace pv
