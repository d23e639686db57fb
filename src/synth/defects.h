// Defects in the spirit of MVTec AD, painted onto a clean surface. Every defect changes pixels
// only inside its mask, and the mask covers every pixel it changes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <opencv2/core.hpp>

#include "synth/rng.h"
#include "synth/surfaces.h"

namespace pv::synth {

struct Defect {
  cv::Mat image;  // RGB CV_32FC3
  cv::Mat mask;   // 8-bit 0/255
};

// The defect types of a category, in name order (MVTec AD's names).
const std::vector<std::string>& defect_names(std::string_view category);

// Tile and leather defects: painted over `clean`.
Defect paint_defect(std::string_view category, std::string_view defect, Rng& rng,
                    const cv::Mat& clean);

// Grid defects: some re-render the wires (bent, broken), the others paint over `clean`.
Defect grid_defect(std::string_view defect, Rng& rng, const GridSurface& surface,
                   const cv::Mat& clean);

}  // namespace pv::synth
