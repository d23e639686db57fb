// Plots drawn with OpenCV: no plotting library needed, PNG out.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <patchvec/metrics.h>

namespace pv::plots {

struct Curve {
  const RocCurve* roc;
  std::string label;  // legend, e.g. "image  AUROC 0.981"
};

// ROC curves on one chart (first in blue, second in orange), atomically written PNG.
void write_roc_png(const std::filesystem::path& path, const std::string& title,
                   const std::vector<Curve>& curves);

}  // namespace pv::plots
