// Pictures of predictions for people, written as PNG files (atomically). Thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include <patchvec/model.h>

namespace pv {

// Where a picture or map of `image` goes: <folder>/<parent folder>_<stem><suffix>, so that
// test/scratch/000.png and test/good/000.png do not overwrite each other.
std::filesystem::path output_path(const std::filesystem::path& folder,
                                  const std::filesystem::path& image, std::string_view suffix);

// Throws pv::Error naming both images when two different ones of `images` would get the same
// output_path() (a/x.png and a_x.png): called before anything is written, so that no output is
// silently lost. `option` names the folder's option in the message ("--heatmap").
void check_distinct_outputs(std::span<const std::filesystem::path> images,
                            const std::filesystem::path& folder, std::string_view option);

// An 8-bit RGB picture: height rows of width pixels, 3 bytes each, row-major.
struct Picture {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> rgb;
};

// `image`'s anomaly map from `prediction` (made by `model`, on this image) laid over it, drawn
// `height` pixels high at the image's own aspect; the part the model's centre crop cut away is
// dimmed. No caption: for notebooks and programs that frame pictures themselves. Throws pv::Error
// when the prediction has no map (an image that could not be read).
Picture heatmap_overlay(const Image& image, const Model& model, const Prediction& prediction,
                        int height = 360);

// The image at `image` beside its anomaly map (from `prediction`, made by `model`) mapped back
// onto it at the image's own aspect, with a caption of the score and the verdict; the part the
// model's centre crop cut away is dimmed. Written to output_path(folder, image, "_heatmap.png");
// returns that path. Throws ImageError or pv::Error naming the file.
std::filesystem::path write_heatmap(const std::filesystem::path& folder,
                                    const std::filesystem::path& image, const Model& model,
                                    const Prediction& prediction);

}  // namespace pv
