#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <patchvec/error.h>
#include <patchvec/pictures.h>

#include "image/render.h"

namespace pv {

std::filesystem::path write_heatmap(const std::filesystem::path& folder,
                                    const std::filesystem::path& image, const Model& model,
                                    const Prediction& p) {
  const ModelInfo& info = model.info();
  const Image original = load_image(image);
  constexpr int kHeight = 360;
  const std::vector<float> normalized = model.normalize_map(p.map);
  char caption[256];
  const std::string name = (image.parent_path().filename() / image.filename()).string();
  std::snprintf(caption, sizeof caption, "%s   score %.3f   %s", name.c_str(), p.score,
                p.verdict == Verdict::kUnknown     ? "no threshold"
                : p.verdict == Verdict::kAnomalous ? "ANOMALOUS"
                                                   : "normal");
  const cv::Mat picture = render::panels(
      {render::scaled_original(original, kHeight),
       render::original_overlay(original, normalized, p.map.width, p.map.height,
                                info.options.embedder.image_size, info.options.embedder.crop_size,
                                kHeight)},
      {"image", info.options.embedder.crop_size > 0
                    ? "anomaly map (dimmed: cropped away, not inspected)"
                    : "anomaly map"},
      caption,
      p.verdict == Verdict::kAnomalous ? cv::Scalar(90, 90, 255) : cv::Scalar(120, 220, 120));
  std::filesystem::create_directories(folder);
  auto path = output_path(folder, image, "_heatmap.png");
  render::write_png(path, picture);
  return path;
}

Picture heatmap_overlay(const Image& image, const Model& model, const Prediction& p, int height) {
  if (p.map.values.empty()) throw Error("heatmap_overlay: the prediction has no anomaly map");
  if (height < 1 || height > 4096) {
    throw Error("heatmap_overlay: height " + std::to_string(height) + " is not in 1..4096");
  }
  const ModelInfo& info = model.info();
  const cv::Mat bgr = render::original_overlay(image, model.normalize_map(p.map), p.map.width,
                                               p.map.height, info.options.embedder.image_size,
                                               info.options.embedder.crop_size, height);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  Picture picture{.width = rgb.cols, .height = rgb.rows};
  picture.rgb.resize(std::size_t(rgb.cols) * rgb.rows * 3);
  for (int y = 0; y < rgb.rows; ++y) {
    std::memcpy(picture.rgb.data() + std::size_t(y) * rgb.cols * 3, rgb.ptr(y),
                std::size_t(rgb.cols) * 3);
  }
  return picture;
}

std::filesystem::path output_path(const std::filesystem::path& folder,
                                  const std::filesystem::path& image, std::string_view suffix) {
  const auto parent = image.parent_path().filename().string();
  return folder /
         ((parent.empty() ? "" : parent + "_") + image.stem().string() + std::string(suffix));
}

void check_distinct_outputs(std::span<const std::filesystem::path> images,
                            const std::filesystem::path& folder, std::string_view option) {
  std::map<std::filesystem::path, std::filesystem::path> first_of;  // output -> image
  for (const auto& image : images) {
    const auto [at, added] = first_of.emplace(output_path(folder, image, ""), image);
    if (!added && at->second.lexically_normal() != image.lexically_normal()) {
      throw Error(std::string(option) + ": " + at->second.string() + " and " + image.string() +
                  " would both be written as " + at->first.string() +
                  "*: rename one, or run them separately");
    }
  }
}

}  // namespace pv
