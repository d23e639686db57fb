// Pictures for people: the model's view of an image, masks, heatmap overlays, captions, PNGs.
// OpenCV types stay inside the image and eval modules.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include <patchvec/image.h>

namespace pv::render {

// What the model sees (resize to image_size^2, centre crop crop_size), drawn at `size` pixels:
// the same geometry at display resolution. BGR, 8-bit.
cv::Mat model_view(const Image& image, int image_size, int crop_size, int size);

// A binary mask through the same geometry with nearest-neighbour sampling (as torchvision
// resizes masks), at `size` x `size`.
cv::Mat model_view_mask(const cv::Mat& mask, int image_size, int crop_size, int size);
// A whole mask resized to width x height as torch's "nearest" does (what a tiled model's map
// covers: the whole scaled image).
cv::Mat resized_mask(const cv::Mat& mask, int width, int height);

// Reads a ground-truth mask (any grey/RGB PNG; > 0 is defect) as 8-bit 0/255.
cv::Mat load_mask(const std::filesystem::path& path);

// `values` (height x width, normalised so that 0.5 is the threshold) resized to `size`, coloured
// with the jet colormap and blended over `view`; the thresholded region is outlined.
cv::Mat heatmap_overlay(const cv::Mat& view, std::span<const float> values, int width, int height,
                        double opacity = 0.5);

// Pictures of whole images keep their aspect up to this ratio of width to height; wider ones are
// drawn less high, so that no picture is ever larger than 4 x display_height wide.
inline constexpr int kMaxDisplayAspect = 4;

// The size an image of width x height is drawn at: display_height high, aspect kept, at most
// kMaxDisplayAspect * display_height wide, at least 1 x 1.
cv::Size display_size(int width, int height, int display_height);

// The whole image at display_size(). BGR, 8-bit.
cv::Mat scaled_original(const Image& image, int display_height);

// The anomaly map (crop geometry) mapped back onto the whole original image, drawn at
// display_size(): the heatmap covers the part of the image the model saw; the border it cropped
// away is dimmed. `values` normalised as for heatmap_overlay().
cv::Mat original_overlay(const Image& image, std::span<const float> values, int width, int height,
                         int image_size, int crop_size, int display_height, double opacity = 0.5);

// Ground truth drawn over a dimmed view (red), or the view alone when `mask` is empty.
cv::Mat mask_overlay(const cv::Mat& view, const cv::Mat& mask);

// Panels side by side with a caption bar above them.
cv::Mat panels(const std::vector<cv::Mat>& images, const std::vector<std::string>& titles,
               const std::string& caption, const cv::Scalar& caption_color);

// The image as 8-bit BGR (rounded, saturated), the form PNG files are written from; the second
// form takes an RGB CV_32FC3 matrix with values in [0, 1].
cv::Mat to_bgr8(const Image& image);
cv::Mat to_bgr8(const cv::Mat& rgb);

// PNG, written atomically. Throws pv::Error naming the file.
void write_png(const std::filesystem::path& path, const cv::Mat& image);

}  // namespace pv::render
