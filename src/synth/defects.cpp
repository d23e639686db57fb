#include "synth/defects.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>

#include <opencv2/imgproc.hpp>

#include <patchvec/error.h>

#include "synth/shapes.h"

namespace pv::synth {
namespace {

// What a painted defect is: a layer blended in with `alpha`, zero outside the defect.
struct Paint {
  cv::Mat layer;  // RGB
  cv::Mat alpha;  // CV_32F
};

cv::Mat to_float(const cv::Mat& mask) {
  cv::Mat f;
  mask.convertTo(f, CV_32F, 1.0 / 255);
  return f;
}

// Alpha `strength` inside the mask with edges softened inward (never spilling outside it).
cv::Mat soft_alpha(const cv::Mat& mask, double strength, double blur) {
  const cv::Mat hard = to_float(mask);
  cv::Mat soft;
  cv::GaussianBlur(hard, soft, cv::Size(), std::max(0.5, blur));
  cv::Mat alpha = hard.mul(soft) * strength;
  return alpha;
}

cv::Mat scaled(const cv::Mat& rgb, cv::Vec3f gain) {
  cv::Mat out = rgb.clone();
  out.forEach<cv::Vec3f>([&](cv::Vec3f& p, const int*) { p = p.mul(gain); });
  return out;
}

cv::Mat flat(int size, cv::Vec3f colour, const cv::Mat& variation = {}) {
  cv::Mat out(size, size, CV_32FC3, cv::Scalar(colour[0], colour[1], colour[2]));
  if (!variation.empty()) {
    cv::Mat v3;
    cv::cvtColor(variation, v3, cv::COLOR_GRAY2RGB);
    out += v3;
  }
  return out;
}

cv::Mat stroke_mask(int size, const std::vector<cv::Point>& points, int thickness) {
  cv::Mat mask = cv::Mat::zeros(size, size, CV_8U);
  cv::polylines(mask, points, false, cv::Scalar(255), std::max(1, thickness), cv::LINE_8);
  return mask;
}

double scale_of(int size) {
  return size / 256.0;
}

// A straight-ish curve through a central point, `length` pixels long.
std::vector<cv::Point> curve_through(Rng& rng, int size, double length, double bend) {
  const cv::Point2d centre = central_point(rng, size);
  const double angle = rng.uniform(0, std::numbers::pi);
  const cv::Point2d half = cv::Point2d(std::cos(angle), std::sin(angle)) * (length / 2);
  return bent_curve(rng, centre - half, centre + half, bend);
}

Paint crack(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const double s = scale_of(size);
  cv::Mat mask = cv::Mat::zeros(size, size, CV_8U);
  const auto trunk =
      random_walk(rng, central_point(rng, size), rng.integer(8, 16), 0.028 * size, 0.7);
  const int thickness = std::max(1, static_cast<int>(rng.uniform(1.0, 3.0) * s));
  cv::polylines(mask, trunk, false, cv::Scalar(255), thickness, cv::LINE_8);
  if (rng.chance(0.5)) {
    const cv::Point from = trunk[trunk.size() / 2];
    const auto branch = random_walk(rng, from, rng.integer(3, 7), 0.025 * size, 0.8);
    cv::polylines(mask, branch, false, cv::Scalar(255), std::max(1, thickness - 1), cv::LINE_8);
  }
  return {scaled(clean, cv::Vec3f::all(float(rng.uniform(0.15, 0.4)))),
          to_float(mask) * rng.uniform(0.6, 1.0)};
}

Paint glue_strip(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const auto curve = curve_through(rng, size, rng.uniform(0.25, 0.5) * size, 0.25);
  const cv::Mat mask = stroke_mask(size, curve, static_cast<int>(rng.uniform(0.05, 0.1) * size));
  const cv::Vec3f colour(0.86f, 0.83f, 0.72f);
  return {flat(size, colour, smooth_noise(rng, size, 16) * 0.04),
          soft_alpha(mask, rng.uniform(0.35, 0.75), 2 * scale_of(size))};
}

Paint gray_stroke(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const auto curve = curve_through(rng, size, rng.uniform(0.15, 0.35) * size, 0.3);
  const cv::Mat mask = stroke_mask(size, curve, static_cast<int>(rng.uniform(0.02, 0.045) * size));
  const float grey = float(rng.uniform(0.42, 0.66));
  return {flat(size, cv::Vec3f::all(grey), pixel_noise(rng, size, 0.02)),
          soft_alpha(mask, rng.uniform(0.5, 0.95), scale_of(size))};
}

Paint oil(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const cv::Mat mask =
      blob_mask(rng, size, central_point(rng, size), rng.uniform(0.06, 0.13) * size);
  const float dark = float(rng.uniform(0.25, 0.55));
  return {scaled(clean, cv::Vec3f(dark, dark * 0.93f, dark * 0.8f)),
          soft_alpha(mask, rng.uniform(0.5, 0.95), 3 * scale_of(size))};
}

Paint rough(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const cv::Mat mask =
      blob_mask(rng, size, central_point(rng, size), rng.uniform(0.06, 0.12) * size);
  cv::Mat noise = pixel_noise(rng, size, 0.14) + smooth_noise(rng, size, size / 4) * 0.1;
  cv::Mat noise3;
  cv::cvtColor(noise, noise3, cv::COLOR_GRAY2RGB);
  return {clean + noise3, to_float(mask) * rng.uniform(0.45, 1.0)};
}

Paint colour_stain(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const cv::Mat mask =
      blob_mask(rng, size, central_point(rng, size), rng.uniform(0.05, 0.12) * size);
  static const cv::Vec3f kShifts[] = {
      {1.4f, 1.3f, 1.25f}, {0.7f, 0.55f, 0.5f}, {1.3f, 0.8f, 0.75f}, {0.85f, 0.95f, 1.2f}};
  const cv::Vec3f shift = kShifts[rng.integer(0, 3)];
  return {scaled(clean, shift), soft_alpha(mask, rng.uniform(0.35, 0.85), 3 * scale_of(size))};
}

Paint cut(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const double s = scale_of(size);
  const auto curve = curve_through(rng, size, rng.uniform(0.12, 0.3) * size, 0.12);
  const cv::Mat core = stroke_mask(size, curve, static_cast<int>(rng.uniform(1.0, 2.5) * s));
  cv::Mat rim;
  cv::dilate(core, rim, cv::Mat(), cv::Point(-1, -1),
             std::max(1, static_cast<int>(std::lround(s))));
  cv::Mat layer = scaled(clean, cv::Vec3f::all(1.3f));
  layer.setTo(cv::Scalar::all(rng.uniform(0.05, 0.12)), core);
  return {layer, to_float(rim) * rng.uniform(0.6, 1.0)};
}

Paint fold(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const auto curve = curve_through(rng, size, rng.uniform(0.3, 0.6) * size, 0.2);
  const double half_width = rng.uniform(0.02, 0.04) * size;
  cv::Mat line = cv::Mat::ones(size, size, CV_8U);
  cv::polylines(line, curve, false, cv::Scalar(0), 1, cv::LINE_8);
  cv::Mat distance;
  cv::distanceTransform(line, distance, cv::DIST_L2, 3);
  const double strength = rng.uniform(0.4, 1.0);
  cv::Mat alpha(size, size, CV_32F);
  cv::Mat layer = clean.clone();
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const double t = distance.at<float>(y, x) / half_width;
      if (t >= 1) {
        alpha.at<float>(y, x) = 0;
        continue;
      }
      // A crease: dark along the middle, a light ridge either side.
      const double gain = 1.0 - 0.45 * (1 - t) * (1 - t) + 0.3 * std::sin(std::numbers::pi * t);
      layer.at<cv::Vec3f>(y, x) *= float(gain);
      alpha.at<float>(y, x) = float(strength);
    }
  }
  return {layer, alpha};
}

Paint glue_blob(Rng& rng, const cv::Mat& clean, const cv::Vec3f& tint) {
  const int size = clean.rows;
  const cv::Point2d centre = central_point(rng, size);
  const double radius = rng.uniform(0.05, 0.1) * size;
  const cv::Mat mask = blob_mask(rng, size, centre, radius);
  cv::Mat layer = scaled(clean, tint);
  const cv::Point2d highlight =
      centre + cv::Point2d(rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)) * radius;
  layer.forEach<cv::Vec3f>([&](cv::Vec3f& p, const int* yx) {
    const double d = std::hypot(yx[1] - highlight.x, yx[0] - highlight.y) / (0.4 * radius);
    p += cv::Vec3f::all(float(0.25 * std::exp(-d * d)));
  });
  return {layer, soft_alpha(mask, rng.uniform(0.45, 0.9), 2 * scale_of(size))};
}

Paint poke(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const double s = scale_of(size);
  const cv::Point2d centre = central_point(rng, size);
  cv::Mat holes = cv::Mat::zeros(size, size, CV_8U);
  const int count = rng.integer(1, 4);
  for (int i = 0; i < count; ++i) {
    const cv::Point c(static_cast<int>(centre.x + rng.uniform(-0.04, 0.04) * size),
                      static_cast<int>(centre.y + rng.uniform(-0.04, 0.04) * size));
    cv::circle(holes, c, std::max(1, static_cast<int>(rng.uniform(1.5, 4.0) * s)), cv::Scalar(255),
               cv::FILLED, cv::LINE_8);
  }
  cv::Mat rim;
  cv::dilate(holes, rim, cv::Mat(), cv::Point(-1, -1),
             std::max(1, static_cast<int>(std::lround(s))));
  cv::Mat layer = scaled(clean, cv::Vec3f::all(1.35f));
  layer.setTo(cv::Scalar::all(rng.uniform(0.04, 0.12)), holes);
  return {layer, to_float(rim) * rng.uniform(0.6, 1.0)};
}

Paint contamination(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const cv::Mat mask =
      blob_mask(rng, size, central_point(rng, size), rng.uniform(0.02, 0.045) * size);
  const float bright = float(rng.uniform(0.75, 0.95));
  return {flat(size, cv::Vec3f(bright, bright * 0.97f, bright * 0.9f),
               smooth_noise(rng, size, size / 6) * 0.08),
          to_float(mask) * rng.uniform(0.7, 1.0)};
}

Paint thread(Rng& rng, const cv::Mat& clean) {
  const int size = clean.rows;
  const auto curve = curve_through(rng, size, rng.uniform(0.3, 0.7) * size, 0.35);
  const cv::Mat mask =
      stroke_mask(size, curve, static_cast<int>(rng.uniform(2.0, 4.0) * scale_of(size)));
  const float tone =
      rng.chance(0.7) ? float(rng.uniform(0.7, 0.9)) : float(rng.uniform(0.05, 0.12));
  return {flat(size, cv::Vec3f(tone, tone * 0.96f, tone * 0.9f)),
          to_float(mask) * rng.uniform(0.6, 1.0)};
}

Defect apply(const cv::Mat& clean, const Paint& paint) {
  Defect d;
  d.image = blend(clean, paint.layer, paint.alpha);
  cv::Mat positive = paint.alpha > 0;
  d.mask = positive;
  return d;
}

// A re-rendered surface: the mask is every pixel that changed, with small gaps closed.
Defect rerendered(const cv::Mat& clean, cv::Mat damaged, int close_radius) {
  cv::Mat diff;
  cv::absdiff(clean, damaged, diff);
  cv::Mat grey;
  cv::cvtColor(diff, grey, cv::COLOR_RGB2GRAY);
  cv::Mat changed = grey > 1e-6f;
  const cv::Mat kernel = cv::getStructuringElement(
      cv::MORPH_ELLIPSE, cv::Size(2 * close_radius + 1, 2 * close_radius + 1));
  cv::morphologyEx(changed, changed, cv::MORPH_CLOSE, kernel);
  return {std::move(damaged), changed};
}

Defect bent(Rng& rng, const GridSurface& surface, const cv::Mat& clean) {
  const int size = surface.size;
  const cv::Point2d centre = central_point(rng, size);
  const double radius = rng.uniform(0.08, 0.15) * size;
  const double amount = rng.uniform(0.25, 0.6) * surface.period;
  const double angle = rng.uniform(0, 2 * std::numbers::pi);
  GridDamage damage;
  damage.shift_x = cv::Mat::zeros(size, size, CV_32F);
  damage.shift_y = cv::Mat::zeros(size, size, CV_32F);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const double r = std::hypot(x + 0.5 - centre.x, y + 0.5 - centre.y) / radius;
      if (r >= 1) continue;
      const double w = (1 - r * r) * (1 - r * r) * amount;
      damage.shift_x.at<float>(y, x) = float(w * std::cos(angle));
      damage.shift_y.at<float>(y, x) = float(w * std::sin(angle));
    }
  }
  return rerendered(clean, render_grid(surface, damage), static_cast<int>(surface.period / 3));
}

Defect broken(Rng& rng, const GridSurface& surface, const cv::Mat& clean) {
  const int size = surface.size;
  GridDamage damage;
  damage.cut =
      blob_mask(rng, size, central_point(rng, size), rng.uniform(1.2, 2.4) * surface.period);
  damage.cut_horizontal = rng.chance(0.5);
  return rerendered(clean, render_grid(surface, damage), 1);
}

using Painter = Paint (*)(Rng&, const cv::Mat&);

const std::map<std::string, std::map<std::string, Painter, std::less<>>, std::less<>>& painters() {
  static const std::map<std::string, std::map<std::string, Painter, std::less<>>, std::less<>>
      table = {
          {"tile",
           {{"crack", crack},
            {"glue_strip", glue_strip},
            {"gray_stroke", gray_stroke},
            {"oil", oil},
            {"rough", rough}}},
          {"leather",
           {{"color", colour_stain},
            {"cut", cut},
            {"fold", fold},
            {"glue",
             [](Rng& rng, const cv::Mat& clean) {
               return glue_blob(rng, clean, cv::Vec3f(0.55f, 0.5f, 0.45f));
             }},
            {"poke", poke}}},
          {"grid",
           {{"glue",
             [](Rng& rng, const cv::Mat& clean) {
               return glue_blob(rng, clean, cv::Vec3f(1.9f, 1.6f, 1.1f));
             }},
            {"metal_contamination", contamination},
            {"thread", thread}}},
      };
  return table;
}

}  // namespace

const std::vector<std::string>& defect_names(std::string_view category) {
  static const std::map<std::string, std::vector<std::string>, std::less<>> names = {
      {"tile", {"crack", "glue_strip", "gray_stroke", "oil", "rough"}},
      {"leather", {"color", "cut", "fold", "glue", "poke"}},
      {"grid", {"bent", "broken", "glue", "metal_contamination", "thread"}},
  };
  const auto it = names.find(category);
  if (it == names.end()) {
    throw Error("unknown synthetic category '" + std::string(category) +
                "' (known: grid, leather, tile)");
  }
  return it->second;
}

Defect paint_defect(std::string_view category, std::string_view defect, Rng& rng,
                    const cv::Mat& clean) {
  const auto& table = painters().at(std::string(category));
  const auto it = table.find(defect);
  if (it == table.end()) {
    throw Error("unknown defect '" + std::string(defect) + "' for synthetic " +
                std::string(category));
  }
  return apply(clean, it->second(rng, clean));
}

Defect grid_defect(std::string_view defect, Rng& rng, const GridSurface& surface,
                   const cv::Mat& clean) {
  if (defect == "bent") return bent(rng, surface, clean);
  if (defect == "broken") return broken(rng, surface, clean);
  return paint_defect("grid", defect, rng, clean);
}

}  // namespace pv::synth
