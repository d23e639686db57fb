#include "synth/shapes.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include <opencv2/imgproc.hpp>

namespace pv::synth {

cv::Mat smooth_noise(Rng& rng, int size, int cells) {
  cells = std::max(cells, 1);
  // Two extra rows and columns keep the cubic interpolation away from the grid's clamped edge.
  cv::Mat grid(cells + 3, cells + 3, CV_32F);
  for (int y = 0; y < grid.rows; ++y) {
    for (int x = 0; x < grid.cols; ++x) grid.at<float>(y, x) = float(rng.uniform(-1, 1));
  }
  const int padded = size * (cells + 3) / cells;
  cv::Mat large;
  cv::resize(grid, large, cv::Size(padded, padded), 0, 0, cv::INTER_CUBIC);
  const int offset = (padded - size) / 2;
  return large(cv::Rect(offset, offset, size, size)).clone();
}

cv::Mat fractal_noise(Rng& rng, int size, int cells, int octaves, double persistence) {
  cv::Mat sum = cv::Mat::zeros(size, size, CV_32F);
  double amplitude = 1.0;
  double total = 0.0;
  for (int octave = 0; octave < octaves; ++octave) {
    sum += smooth_noise(rng, size, cells << octave) * amplitude;
    total += amplitude;
    amplitude *= persistence;
  }
  return sum / total;
}

cv::Mat pixel_noise(Rng& rng, int size, double sigma) {
  cv::Mat noise(size, size, CV_32F);
  cv::RNG cv_rng(rng.next());
  cv_rng.fill(noise, cv::RNG::NORMAL, 0.0, sigma);
  return noise;
}

Voronoi voronoi(Rng& rng, int size, double cells_across, double jitter) {
  const double cell = size / cells_across;
  const int n = static_cast<int>(std::ceil(cells_across)) + 2;  // a ring of seeds outside too
  std::vector<cv::Point2d> seeds(static_cast<std::size_t>(n) * n);
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < n; ++i) {
      const double jx = 0.5 + jitter * rng.uniform(-0.5, 0.5);
      const double jy = 0.5 + jitter * rng.uniform(-0.5, 0.5);
      seeds[j * n + i] = {(i - 1 + jx) * cell, (j - 1 + jy) * cell};
    }
  }
  Voronoi v;
  v.nearest.create(size, size, CV_32F);
  v.second.create(size, size, CV_32F);
  v.cell.create(size, size, CV_32S);
  v.cell_count = n * n;
  for (int y = 0; y < size; ++y) {
    const int cy = static_cast<int>((y + 0.5) / cell) + 1;
    for (int x = 0; x < size; ++x) {
      const int cx = static_cast<int>((x + 0.5) / cell) + 1;
      double d1 = std::numeric_limits<double>::max(), d2 = d1;
      int best = 0;
      for (int j = std::max(cy - 2, 0); j <= std::min(cy + 2, n - 1); ++j) {
        for (int i = std::max(cx - 2, 0); i <= std::min(cx + 2, n - 1); ++i) {
          const cv::Point2d& s = seeds[j * n + i];
          const double d = std::hypot(x + 0.5 - s.x, y + 0.5 - s.y);
          if (d < d1) {
            d2 = d1;
            d1 = d;
            best = j * n + i;
          } else if (d < d2) {
            d2 = d;
          }
        }
      }
      v.nearest.at<float>(y, x) = float(d1);
      v.second.at<float>(y, x) = float(d2);
      v.cell.at<int>(y, x) = best;
    }
  }
  return v;
}

cv::Mat blob_mask(Rng& rng, int size, cv::Point2d center, double radius) {
  cv::Mat soft = cv::Mat::zeros(size, size, CV_32F);
  const int lobes = rng.integer(2, 5);
  for (int i = 0; i < lobes; ++i) {
    const double angle = rng.uniform(0, 2 * std::numbers::pi);
    const double offset = i == 0 ? 0.0 : rng.uniform(0.2, 0.7) * radius;
    const cv::Point c(static_cast<int>(center.x + offset * std::cos(angle)),
                      static_cast<int>(center.y + offset * std::sin(angle)));
    const cv::Size axes(std::max(2, static_cast<int>(radius * rng.uniform(0.45, 1.0))),
                        std::max(2, static_cast<int>(radius * rng.uniform(0.3, 0.8))));
    cv::ellipse(soft, c, axes, rng.uniform(0, 180), 0, 360, cv::Scalar(1.0), cv::FILLED);
  }
  const double blur = std::max(1.0, radius / 4);
  cv::GaussianBlur(soft, soft, cv::Size(), blur);
  const int cells = std::max(4, static_cast<int>(size / std::max(radius / 2, 2.0)));
  soft += smooth_noise(rng, size, cells) * 0.25;
  cv::Mat mask;
  cv::threshold(soft, mask, 0.5, 255, cv::THRESH_BINARY);
  mask.convertTo(mask, CV_8U);
  return mask;
}

std::vector<cv::Point> random_walk(Rng& rng, cv::Point2d start, int steps, double step,
                                   double turn) {
  std::vector<cv::Point> points{cv::Point(static_cast<int>(start.x), static_cast<int>(start.y))};
  double angle = rng.uniform(0, 2 * std::numbers::pi);
  cv::Point2d p = start;
  for (int i = 0; i < steps; ++i) {
    angle += rng.uniform(-turn, turn);
    p += cv::Point2d(std::cos(angle), std::sin(angle)) * step * rng.uniform(0.6, 1.4);
    points.emplace_back(static_cast<int>(p.x), static_cast<int>(p.y));
  }
  return points;
}

std::vector<cv::Point> bent_curve(Rng& rng, cv::Point2d a, cv::Point2d b, double bend) {
  const cv::Point2d mid = (a + b) * 0.5;
  const cv::Point2d along = b - a;
  const cv::Point2d normal(-along.y, along.x);
  const cv::Point2d control = mid + normal * rng.uniform(-bend, bend);
  std::vector<cv::Point> points;
  constexpr int kSegments = 32;
  for (int i = 0; i <= kSegments; ++i) {
    const double t = double(i) / kSegments;
    const cv::Point2d p = a * ((1 - t) * (1 - t)) + control * (2 * t * (1 - t)) + b * (t * t);
    points.emplace_back(static_cast<int>(std::lround(p.x)), static_cast<int>(std::lround(p.y)));
  }
  return points;
}

cv::Point2d central_point(Rng& rng, int size) {
  return {rng.uniform(0.28, 0.72) * size, rng.uniform(0.28, 0.72) * size};
}

cv::Mat blend(const cv::Mat& base, const cv::Mat& layer, const cv::Mat& alpha) {
  cv::Mat out = base.clone();
  for (int y = 0; y < base.rows; ++y) {
    const float* a = alpha.ptr<float>(y);
    const cv::Vec3f* l = layer.ptr<cv::Vec3f>(y);
    cv::Vec3f* o = out.ptr<cv::Vec3f>(y);
    for (int x = 0; x < base.cols; ++x) {
      if (a[x] > 0) o[x] = o[x] * (1 - a[x]) + l[x] * a[x];
    }
  }
  return out;
}

cv::Mat shade(const cv::Mat& rgb, const cv::Mat& gain) {
  cv::Mat out = rgb.clone();
  for (int y = 0; y < rgb.rows; ++y) {
    const float* g = gain.ptr<float>(y);
    cv::Vec3f* o = out.ptr<cv::Vec3f>(y);
    for (int x = 0; x < rgb.cols; ++x) {
      for (int c = 0; c < 3; ++c) o[x][c] = std::clamp(o[x][c] * g[x], 0.0f, 1.0f);
    }
  }
  return out;
}

cv::Mat lighting(Rng& rng, int size, double gradient, double variation) {
  const double angle = rng.uniform(0, 2 * std::numbers::pi);
  const double gx = std::cos(angle) * gradient, gy = std::sin(angle) * gradient;
  const double brightness = 1.0 + rng.uniform(-variation, variation);
  cv::Mat light = smooth_noise(rng, size, 2) * (gradient * 0.5);
  for (int y = 0; y < size; ++y) {
    float* row = light.ptr<float>(y);
    for (int x = 0; x < size; ++x) {
      const double u = (x + 0.5) / size - 0.5, v = (y + 0.5) / size - 0.5;
      row[x] = float(brightness * (1.0 + row[x] + gx * u + gy * v));
    }
  }
  return light;
}

}  // namespace pv::synth
