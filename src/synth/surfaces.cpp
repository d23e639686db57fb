#include "synth/surfaces.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "synth/shapes.h"

namespace pv::synth {
namespace {

float smoothstep(float edge0, float edge1, float x) {
  const float t = std::clamp((x - edge0) / (edge1 - edge0), 0.0f, 1.0f);
  return t * t * (3 - 2 * t);
}

}  // namespace

cv::Mat render_tile(Rng& rng, int size) {
  const double scale = size / 256.0;
  // Random point features (flecks) were tried: with a random backbone they made normal images'
  // scores spread so much that tile's image AUROC fell from ~0.79 to ~0.65.
  const Voronoi cells = voronoi(rng, size, rng.uniform(4.5, 5.5), 0.75);
  std::vector<cv::Vec3f> tone(static_cast<std::size_t>(cells.cell_count));
  const double base = rng.uniform(0.52, 0.6);
  for (auto& t : tone) {
    const double l = base + rng.normal() * 0.035;
    const double warm = rng.normal() * 0.012;
    t = cv::Vec3f(float(l + warm), float(l), float(l - warm));
  }
  const cv::Mat grain = fractal_noise(rng, size, std::max(4, size / 24), 3, 0.6);
  const cv::Mat slow = smooth_noise(rng, size, 3);
  cv::Mat rgb(size, size, CV_32FC3);
  const float grout_width = float(rng.uniform(2.5, 3.5) * scale);
  const cv::Vec3f grout_tone(0.3f, 0.3f, 0.29f);
  cv::Mat grout(size, size, CV_32F);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const float edge = cells.second.at<float>(y, x) - cells.nearest.at<float>(y, x);
      const float g = 1.0f - smoothstep(grout_width * 0.5f, grout_width, edge);
      grout.at<float>(y, x) = g;
      const float texture = 0.07f * grain.at<float>(y, x) + 0.02f * slow.at<float>(y, x);
      rgb.at<cv::Vec3f>(y, x) = tone[cells.cell.at<int>(y, x)] + cv::Vec3f::all(texture);
    }
  }
  cv::Mat grout_rgb(size, size, CV_32FC3, cv::Scalar(grout_tone[0], grout_tone[1], grout_tone[2]));
  cv::Mat grout_grain;
  cv::cvtColor(pixel_noise(rng, size, 0.03), grout_grain, cv::COLOR_GRAY2RGB);
  grout_rgb += grout_grain;
  rgb = blend(rgb, grout_rgb, grout);
  cv::Mat noise;
  cv::cvtColor(pixel_noise(rng, size, 0.012), noise, cv::COLOR_GRAY2RGB);
  rgb += noise;
  return shade(rgb, lighting(rng, size, 0.05, 0.03));
}

cv::Mat render_leather(Rng& rng, int size) {
  const double scale = size / 256.0;
  const double cells_across = rng.uniform(34, 42);
  const double cell = size / cells_across;
  const Voronoi cells = voronoi(rng, size, cells_across, 0.9);
  const cv::Vec3f brown(float(rng.uniform(0.44, 0.5)), float(rng.uniform(0.29, 0.33)),
                        float(rng.uniform(0.19, 0.23)));
  const cv::Mat slow = fractal_noise(rng, size, 3, 2, 0.5);
  const cv::Mat hue = smooth_noise(rng, size, 2);
  const cv::Mat fine = pixel_noise(rng, size, 0.012);
  cv::Mat rgb(size, size, CV_32FC3);
  const float crease_width = float(rng.uniform(0.7, 1.0) * scale);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const float edge = cells.second.at<float>(y, x) - cells.nearest.at<float>(y, x);
      const float crease = std::exp(-edge * edge / (2 * crease_width * crease_width));
      const float dome = 1.0f - 0.12f * std::min(1.0f, cells.nearest.at<float>(y, x) / float(cell));
      const float light = dome * (1.0f - 0.28f * crease) *
                          (1.0f + 0.06f * slow.at<float>(y, x) + fine.at<float>(y, x));
      const float h = 0.03f * hue.at<float>(y, x);
      rgb.at<cv::Vec3f>(y, x) = cv::Vec3f(brown[0] + h, brown[1], brown[2] - h) * light;
    }
  }
  const int pores = size * size / 260;
  for (int i = 0; i < pores; ++i) {
    const cv::Point c(rng.integer(0, size - 1), rng.integer(0, size - 1));
    const double darkness = rng.uniform(0.55, 0.8);
    const cv::Vec3f p = rgb.at<cv::Vec3f>(c) * float(darkness);
    cv::circle(rgb, c, std::max(0, static_cast<int>(rng.uniform(0.2, 1.2) * scale)),
               cv::Scalar(p[0], p[1], p[2]), cv::FILLED, cv::LINE_AA);
  }
  return shade(rgb, lighting(rng, size, 0.05, 0.03));
}

GridSurface grid_surface(Rng& rng, int size) {
  GridSurface s;
  s.size = size;
  s.period = size / rng.uniform(13.5, 14.5);
  s.wire_width = s.period * rng.uniform(0.26, 0.32);
  s.angle = rng.uniform(-1.5, 1.5) * std::numbers::pi / 180;
  s.phase_u = rng.uniform();
  s.phase_v = rng.uniform();
  const double dark = rng.uniform(0.16, 0.22);
  s.background = cv::Mat(size, size, CV_32FC3, cv::Scalar(dark, dark, dark * 1.04));
  cv::Mat speckle;
  cv::cvtColor(fractal_noise(rng, size, std::max(4, size / 16), 3, 0.6) * 0.035 +
                   pixel_noise(rng, size, 0.01),
               speckle, cv::COLOR_GRAY2RGB);
  s.background += speckle;
  s.lighting = lighting(rng, size, 0.06, 0.03);
  s.wire_tone = fractal_noise(rng, size, std::max(4, size / 32), 2, 0.5) * 0.06 +
                pixel_noise(rng, size, 0.015);
  return s;
}

cv::Mat render_grid(const GridSurface& s, const GridDamage& damage) {
  const int size = s.size;
  const double c = std::cos(s.angle), sn = std::sin(s.angle);
  const double half = s.wire_width / 2;
  cv::Mat rgb = s.background.clone();
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      double px = x + 0.5, py = y + 0.5;
      if (!damage.shift_x.empty()) {
        px -= damage.shift_x.at<float>(y, x);
        py -= damage.shift_y.at<float>(y, x);
      }
      const double u = (c * px + sn * py) / s.period + s.phase_u;
      const double v = (-sn * px + c * py) / s.period + s.phase_v;
      // Distance to the nearest vertical (constant u) and horizontal (constant v) wire centre.
      const double du = std::abs(u - std::floor(u) - 0.5) * s.period;
      const double dv = std::abs(v - std::floor(v) - 0.5) * s.period;
      bool vertical = du < half, horizontal = dv < half;
      if (!damage.cut.empty() && damage.cut.at<unsigned char>(y, x)) {
        (damage.cut_horizontal ? horizontal : vertical) = false;
      }
      if (!vertical && !horizontal) continue;
      // Woven: at a crossing, the wire on top alternates like a checkerboard.
      const bool vertical_on_top =
          (static_cast<long>(std::floor(u)) + static_cast<long>(std::floor(v))) % 2 == 0;
      const bool show_vertical = vertical && (!horizontal || vertical_on_top);
      const double d = show_vertical ? du : dv;
      const double along = show_vertical ? v : u;  // position along the wire, in periods
      const double profile = std::sqrt(std::max(0.0, 1.0 - (d / half) * (d / half)));
      // The wire dips under its crossing neighbour: darker near the crossings it goes under.
      const double dip = 0.85 + 0.15 * std::cos(2 * std::numbers::pi * (along - 0.5));
      const float tone = float((0.34 + 0.38 * profile) * dip) + s.wire_tone.at<float>(y, x);
      rgb.at<cv::Vec3f>(y, x) = cv::Vec3f(tone, tone * 0.99f, tone * 0.97f);
    }
  }
  return shade(rgb, s.lighting);
}

}  // namespace pv::synth
