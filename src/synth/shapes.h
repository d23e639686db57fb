// Building blocks of the procedural surfaces: smooth noise, Voronoi cells, irregular blobs and
// strokes. Images are CV_32F (one channel) or CV_32FC3 in RGB order, values around [0, 1].
#pragma once

#include <vector>

#include <opencv2/core.hpp>

#include "synth/rng.h"

namespace pv::synth {

// Smooth noise in about [-1, 1]: a random grid of `cells` x `cells` values, cubic-interpolated.
cv::Mat smooth_noise(Rng& rng, int size, int cells);

// Sum of smooth noise octaves, starting at `cells` and doubling, each `persistence` times weaker.
cv::Mat fractal_noise(Rng& rng, int size, int cells, int octaves, double persistence = 0.5);

// Per-pixel Gaussian noise with standard deviation `sigma`.
cv::Mat pixel_noise(Rng& rng, int size, double sigma);

// Voronoi cells from a jittered grid of `cells_across` x `cells_across` seeds.
struct Voronoi {
  cv::Mat nearest;  // CV_32F distance to the nearest seed
  cv::Mat second;   // CV_32F distance to the second nearest
  cv::Mat cell;     // CV_32S index of the nearest seed
  int cell_count = 0;
};
Voronoi voronoi(Rng& rng, int size, double cells_across, double jitter);

// An irregular filled blob around `center` with radius about `radius`: 8-bit 0/255.
cv::Mat blob_mask(Rng& rng, int size, cv::Point2d center, double radius);

// A wandering polyline from `start`: `steps` segments of `step` pixels, turning a little each time.
std::vector<cv::Point> random_walk(Rng& rng, cv::Point2d start, int steps, double step,
                                   double turn);

// A quadratic Bezier curve through a random bend, from `a` to `b`.
std::vector<cv::Point> bent_curve(Rng& rng, cv::Point2d a, cv::Point2d b, double bend);

// A random point in the middle part of the image, where the model's centre crop sees it.
cv::Point2d central_point(Rng& rng, int size);

// out = base * (1 - alpha) + layer * alpha, per pixel; alpha CV_32F.
cv::Mat blend(const cv::Mat& base, const cv::Mat& layer, const cv::Mat& alpha);

// Multiplies each RGB channel by `gain` (one CV_32F map) and clamps to [0, 1].
cv::Mat shade(const cv::Mat& rgb, const cv::Mat& gain);

// Global lighting: a gentle gradient in a random direction, slow noise, and a brightness factor.
cv::Mat lighting(Rng& rng, int size, double gradient, double variation);

}  // namespace pv::synth
