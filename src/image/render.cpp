#include "image/render.h"

#include <cmath>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <patchvec/error.h>
#include <patchvec/files.h>

namespace pv::render {
namespace {

cv::Rect centre_crop(int full, int crop) {
  // torchvision: offset = int(round((full - crop) / 2.0)), round half to even.
  const int offset = static_cast<int>(std::nearbyint((full - crop) / 2.0));
  return {offset, offset, crop, crop};
}

// Display geometry: the image is resized to `scaled` and the central `size` square is kept, so
// that size / scaled == crop_size / image_size.
int scaled_size(int image_size, int crop_size, int size) {
  return crop_size > 0
             ? static_cast<int>(std::lround(static_cast<double>(size) * image_size / crop_size))
             : size;
}

}  // namespace

cv::Mat model_view(const Image& image, int image_size, int crop_size, int size) {
  const cv::Mat rgb(image.height, image.width, CV_32FC3, const_cast<float*>(image.pixels.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  bgr.convertTo(bgr, CV_8UC3, 255.0);
  const int scaled = scaled_size(image_size, crop_size, size);
  cv::Mat resized;
  cv::resize(bgr, resized, {scaled, scaled}, 0, 0, cv::INTER_AREA);
  return resized(centre_crop(scaled, size)).clone();
}

cv::Mat model_view_mask(const cv::Mat& mask, int image_size, int crop_size, int size) {
  const int scaled = scaled_size(image_size, crop_size, size);
  cv::Mat out(size, size, CV_8UC1);
  const cv::Rect crop = centre_crop(scaled, size);
  for (int y = 0; y < size; ++y) {
    // floor(dst * in / out), as torch's "nearest"
    const int sy = static_cast<int>(static_cast<std::int64_t>(y + crop.y) * mask.rows / scaled);
    for (int x = 0; x < size; ++x) {
      const int sx = static_cast<int>(static_cast<std::int64_t>(x + crop.x) * mask.cols / scaled);
      out.at<std::uint8_t>(y, x) = mask.at<std::uint8_t>(sy, sx) > 0 ? 255 : 0;
    }
  }
  return out;
}

cv::Mat resized_mask(const cv::Mat& mask, int width, int height) {
  cv::Mat out(height, width, CV_8UC1);
  for (int y = 0; y < height; ++y) {
    const int sy = static_cast<int>(static_cast<std::int64_t>(y) * mask.rows / height);
    for (int x = 0; x < width; ++x) {
      const int sx = static_cast<int>(static_cast<std::int64_t>(x) * mask.cols / width);
      out.at<std::uint8_t>(y, x) = mask.at<std::uint8_t>(sy, sx) > 0 ? 255 : 0;
    }
  }
  return out;
}

cv::Mat load_mask(const std::filesystem::path& path) {
  const Image image = load_image(path);
  cv::Mat mask(image.height, image.width, CV_8UC1);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x)
      mask.at<std::uint8_t>(y, x) = image.at(y, x, 0) > 0 ? 255 : 0;
  }
  return mask;
}

cv::Mat heatmap_overlay(const cv::Mat& view, std::span<const float> values, int width, int height,
                        double opacity) {
  const cv::Mat map(height, width, CV_32FC1, const_cast<float*>(values.data()));
  cv::Mat resized;
  cv::resize(map, resized, view.size(), 0, 0, cv::INTER_LINEAR);
  cv::Mat grey;
  resized.convertTo(grey, CV_8UC1, 255.0);
  cv::Mat colors;
  cv::applyColorMap(grey, colors, cv::COLORMAP_JET);
  cv::Mat blended;
  cv::addWeighted(view, 1.0 - opacity, colors, opacity, 0.0, blended);
  cv::Mat region = resized >= 0.5f;  // normalised maps: 0.5 is the pixel threshold
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(region, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
  cv::drawContours(blended, contours, -1, cv::Scalar(255, 255, 255), 2, cv::LINE_AA);
  return blended;
}

cv::Size display_size(int width, int height, int display_height) {
  const double scale = std::min(static_cast<double>(display_height) / height,
                                static_cast<double>(kMaxDisplayAspect * display_height) / width);
  return {std::max(1, static_cast<int>(std::lround(width * scale))),
          std::max(1, static_cast<int>(std::lround(height * scale)))};
}

cv::Mat scaled_original(const Image& image, int display_height) {
  // Resized before anything else is allocated at the image's own size.
  const cv::Mat rgb(image.height, image.width, CV_32FC3, const_cast<float*>(image.pixels.data()));
  cv::Mat small;
  cv::resize(rgb, small, display_size(image.width, image.height, display_height), 0, 0,
             cv::INTER_AREA);
  return to_bgr8(small);
}

cv::Mat original_overlay(const Image& image, std::span<const float> values, int width, int height,
                         int image_size, int crop_size, int display_height, double opacity) {
  const cv::Mat picture = scaled_original(image, display_height);
  // The crop is the same fraction of each side of the original as of the resized image.
  const int crop = crop_size > 0 ? crop_size : image_size;
  const double offset = std::nearbyint((image_size - crop) / 2.0) / image_size;
  const double extent = static_cast<double>(crop) / image_size;
  const auto scaled = [](double fraction, int side) {
    return static_cast<int>(std::lround(fraction * side));
  };
  cv::Rect seen(scaled(offset, picture.cols), scaled(offset, picture.rows),
                std::max(1, scaled(extent, picture.cols)),
                std::max(1, scaled(extent, picture.rows)));
  seen &= cv::Rect(0, 0, picture.cols, picture.rows);
  cv::Mat out = picture * 0.4;
  heatmap_overlay(picture(seen), values, width, height, opacity).copyTo(out(seen));
  return out;
}

cv::Mat mask_overlay(const cv::Mat& view, const cv::Mat& mask) {
  if (mask.empty()) return view.clone();
  cv::Mat out = view * 0.45;
  out.setTo(cv::Scalar(40, 40, 230), mask);
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(mask.clone(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
  cv::drawContours(out, contours, -1, cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
  return out;
}

namespace {

// `text` at `scale` or smaller, as large as fits in `width` pixels (down to 0.35; shortened with
// "..." beyond that): a title never runs past its panel.
void put_fitted(cv::Mat& out, std::string text, cv::Point origin, int width, double scale,
                const cv::Scalar& color) {
  constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
  constexpr double kSmallest = 0.35;
  const auto fits = [&](const std::string& t, double s) {
    int baseline = 0;
    return cv::getTextSize(t, kFont, s, 1, &baseline).width <= width;
  };
  while (scale > kSmallest && !fits(text, scale)) scale = std::max(kSmallest, scale - 0.05);
  while (text.size() > 3 && !fits(text, scale)) text = text.substr(0, text.size() - 4) + "...";
  cv::putText(out, text, origin, kFont, scale, color, 1, cv::LINE_AA);
}

}  // namespace

cv::Mat panels(const std::vector<cv::Mat>& images, const std::vector<std::string>& titles,
               const std::string& caption, const cv::Scalar& caption_color) {
  constexpr int kGap = 8;
  constexpr int kCaption = 34;
  constexpr int kTitle = 24;
  int width = kGap;
  int height = 0;
  for (const auto& image : images) {
    width += image.cols + kGap;
    height = std::max(height, image.rows);
  }
  cv::Mat out(kCaption + kTitle + height + kGap, width, CV_8UC3, cv::Scalar(32, 32, 32));
  put_fitted(out, caption, {kGap, 23}, width - 2 * kGap, 0.6, caption_color);
  int x = kGap;
  for (std::size_t i = 0; i < images.size(); ++i) {
    put_fitted(out, i < titles.size() ? titles[i] : "", {x, kCaption + 17}, images[i].cols, 0.5,
               cv::Scalar(220, 220, 220));
    images[i].copyTo(out(cv::Rect(x, kCaption + kTitle, images[i].cols, images[i].rows)));
    x += images[i].cols + kGap;
  }
  return out;
}

cv::Mat to_bgr8(const Image& image) {
  return to_bgr8(
      cv::Mat(image.height, image.width, CV_32FC3, const_cast<float*>(image.pixels.data())));
}

cv::Mat to_bgr8(const cv::Mat& rgb) {
  cv::Mat bgr, bytes;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  bgr.convertTo(bytes, CV_8UC3, 255.0);
  return bytes;
}

void write_png(const std::filesystem::path& path, const cv::Mat& image) {
  std::vector<unsigned char> bytes;
  if (!cv::imencode(".png", image, bytes)) throw Error("cannot encode PNG " + path.string());
  AtomicFile file(path);
  file.write(std::as_bytes(std::span(bytes.data(), bytes.size())));
  file.commit();
}

}  // namespace pv::render

namespace pv {

void write_png(const std::filesystem::path& path, const Image& image) {
  render::write_png(path, render::to_bgr8(image));
}

}  // namespace pv
