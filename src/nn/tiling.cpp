#include "nn/tiling.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include <ATen/ATen.h>

#include <patchvec/error.h>

#include "nn/preprocess.h"

namespace pv {
namespace {

// Tile origins along one side of `extent` pixels: every `stride`, the last one moved back to end
// at the border.
std::vector<int> origins(int extent, int size, int stride) {
  std::vector<int> out;
  for (int at = 0;; at += stride) {
    if (at + size >= extent) {
      out.push_back(extent - size);
      break;
    }
    out.push_back(at);
  }
  return out;
}

}  // namespace

void validate(const TilingOptions& options) {
  if (!options.enabled()) return;
  if (options.size < 32 || options.size > 4096) {
    throw Error("--tile must be between 32 and 4096 pixels, got " + std::to_string(options.size));
  }
  if (options.overlap < 0 || options.overlap > options.size / 2) {
    throw Error("--tile-overlap must be between 0 and half the tile (" +
                std::to_string(options.size / 2) + "), got " + std::to_string(options.overlap));
  }
  if (!(options.scale > 0 && options.scale <= 4)) {
    throw Error("--tile-scale must be in (0, 4], got " + std::to_string(options.scale));
  }
}

TileLayout tile_layout(int width, int height, const TilingOptions& options) {
  validate(options);
  if (!options.enabled()) throw Error("tile_layout: tiling is off");
  TileLayout layout{.width = static_cast<int>(std::lround(width * options.scale)),
                    .height = static_cast<int>(std::lround(height * options.scale)),
                    .size = options.size};
  if (layout.width < options.size || layout.height < options.size) {
    throw Error("an image of " + std::to_string(width) + "x" + std::to_string(height) +
                " pixels is " + std::to_string(layout.width) + "x" + std::to_string(layout.height) +
                " at --tile-scale " + std::to_string(options.scale) + ", smaller than one " +
                std::to_string(options.size) + "-pixel tile: lower --tile or raise --tile-scale");
  }
  const int stride = options.size - options.overlap;
  layout.xs = origins(layout.width, options.size, stride);
  layout.ys = origins(layout.height, options.size, stride);
  return layout;
}

std::string describe(const TilingOptions& options) {
  if (!options.enabled()) return "no tiling";
  char scale[32];
  std::snprintf(scale, sizeof scale, "%g", options.scale);
  return "tiles of " + std::to_string(options.size) + " px, overlap " +
         std::to_string(options.overlap) + ", scale " + scale;
}

namespace nn {

at::Tensor scaled(const at::Tensor& chw, const TileLayout& layout) {
  if (chw.size(1) == layout.height && chw.size(2) == layout.width) return chw;
  return resize_bounded(chw.unsqueeze(0), layout.height, layout.width).squeeze(0);
}

at::Tensor cut_tiles(const at::Tensor& chw, const TileLayout& layout) {
  std::vector<at::Tensor> tiles;
  tiles.reserve(layout.count());
  for (const int y : layout.ys) {
    for (const int x : layout.xs) {
      tiles.push_back(chw.narrow(1, y, layout.size).narrow(2, x, layout.size));
    }
  }
  return at::stack(tiles).contiguous();
}

std::vector<float> blend_weights(const std::vector<int>& origins, int size, std::size_t tile) {
  // Each tile's ramp rises over the pixels it shares with the tile before it and falls over those
  // it shares with the one after; normalised by the sum of every tile's ramp at that pixel, so
  // the weights of a pixel add up to one, and a pixel only one tile covers has weight exactly 1.
  const auto ramp = [&](std::size_t t, int x) -> double {
    const int start = origins[t], end = origins[t] + size;
    if (x < start || x >= end) return 0.0;
    double r = 1.0;
    if (t > 0) {
      const int shared = origins[t - 1] + size - start;
      if (shared > 0) r = std::min(r, (x - start + 0.5) / shared);
    }
    if (t + 1 < origins.size()) {
      const int shared = end - origins[t + 1];
      if (shared > 0) r = std::min(r, (end - x - 0.5) / shared);
    }
    return r;
  };
  std::vector<float> weights(static_cast<std::size_t>(size));
  for (int i = 0; i < size; ++i) {
    const int x = origins[tile] + i;
    double total = 0;
    for (std::size_t t = 0; t < origins.size(); ++t) total += ramp(t, x);
    weights[static_cast<std::size_t>(i)] = static_cast<float>(ramp(tile, x) / total);
  }
  return weights;
}

at::Tensor stitch(const at::Tensor& tile_maps, const TileLayout& layout) {
  if (tile_maps.dim() != 3 || tile_maps.size(0) != static_cast<std::int64_t>(layout.count()) ||
      tile_maps.size(1) != layout.size || tile_maps.size(2) != layout.size) {
    throw Error("stitch: the tile maps do not match the layout");
  }
  if (layout.count() == 1) return tile_maps[0].clone();
  at::Tensor canvas = at::zeros({layout.height, layout.width}, at::kFloat);
  std::vector<at::Tensor> column_weights, row_weights;
  for (std::size_t i = 0; i < layout.xs.size(); ++i) {
    column_weights.push_back(at::tensor(blend_weights(layout.xs, layout.size, i), at::kFloat));
  }
  for (std::size_t j = 0; j < layout.ys.size(); ++j) {
    row_weights.push_back(at::tensor(blend_weights(layout.ys, layout.size, j), at::kFloat));
  }
  const at::Tensor maps = tile_maps.to(at::kFloat);
  for (std::size_t j = 0; j < layout.ys.size(); ++j) {
    for (std::size_t i = 0; i < layout.xs.size(); ++i) {
      const at::Tensor weight = row_weights[j].unsqueeze(1) * column_weights[i].unsqueeze(0);
      canvas.narrow(0, layout.ys[j], layout.size)
          .narrow(1, layout.xs[i], layout.size)
          .add_(maps[static_cast<std::int64_t>(j * layout.xs.size() + i)] * weight);
    }
  }
  return canvas;
}

}  // namespace nn
}  // namespace pv
