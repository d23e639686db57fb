// Pictures of predictions for people, written as PNG files (atomically). Thread-safe.
#pragma once

#include <filesystem>

#include <patchvec/model.h>

namespace pv {

// The image at `image` beside its anomaly map (from `prediction`, made by `model`) mapped back
// onto it at the image's own aspect, with a caption of the score and the verdict; the part the
// model's centre crop cut away is dimmed. Written to
// <folder>/<parent folder>_<stem>_heatmap.png (test/scratch/000.png and test/good/000.png do not
// overwrite each other); returns that path. Throws ImageError or pv::Error naming the file.
std::filesystem::path write_heatmap(const std::filesystem::path& folder,
                                    const std::filesystem::path& image, const Model& model,
                                    const Prediction& prediction);

}  // namespace pv
