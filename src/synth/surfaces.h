// The three defect-free surfaces, each varied per image (layout, grain, lighting, small shifts and
// rotations) so that "normal" is a distribution, not one picture.
#pragma once

#include <opencv2/core.hpp>

#include "synth/rng.h"

namespace pv::synth {

// Irregular stone tiles with grout, fine grain and dark and light flecks. RGB CV_32FC3.
cv::Mat render_tile(Rng& rng, int size);

// Fine leather grain: small domed cells with dark creases, pores, slow colour variation.
cv::Mat render_leather(Rng& rng, int size);

// A woven metal mesh over a dark background. Its defects need to re-render the wires (bend them,
// break them), so it is drawn from parameters and an optional damage description.
struct GridSurface {
  int size = 0;
  double period = 0;  // pixels between wires
  double wire_width = 0;
  double angle = 0;  // radians
  double phase_u = 0, phase_v = 0;
  cv::Mat background;  // RGB
  cv::Mat lighting;    // gain
  cv::Mat wire_tone;   // per-pixel wire brightness variation
};
GridSurface grid_surface(Rng& rng, int size);

struct GridDamage {
  cv::Mat shift_x, shift_y;  // CV_32F displacement of the wires, pixels (empty: none)
  cv::Mat cut;               // 8-bit: where the wires of one direction are missing (empty: none)
  bool cut_horizontal = true;
};
cv::Mat render_grid(const GridSurface& surface, const GridDamage& damage = {});

}  // namespace pv::synth
