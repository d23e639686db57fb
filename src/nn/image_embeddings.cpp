// Image embeddings from patch embeddings (embedder.h): the mean of the unit patches, and the
// defect embedding weighted by how anomalous each patch is. No libtorch: plain loops in double.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include <patchvec/embedder.h>

namespace pv {

namespace {

// The sum of L2-normalised patches, each times its weight (`weights` empty: all 1), and the sum
// of the weights of the patches that counted (zero patches have no direction and count not).
std::pair<std::vector<double>, double> weighted_sum_of_unit_patches(
    std::span<const float> patches, std::size_t dim, std::span<const double> weights) {
  std::vector<double> sum(dim, 0.0);
  double total = 0;
  const std::size_t count = dim == 0 ? 0 : patches.size() / dim;
  for (std::size_t p = 0; p < count; ++p) {
    const double weight = weights.empty() ? 1.0 : weights[p];
    if (weight <= 0) continue;
    const float* v = patches.data() + p * dim;
    double norm = 0;
    for (std::size_t d = 0; d < dim; ++d) norm += double(v[d]) * v[d];
    if (norm == 0) continue;
    const double inverse = 1.0 / std::sqrt(norm);
    for (std::size_t d = 0; d < dim; ++d) sum[d] += weight * (v[d] * inverse);
    total += weight;
  }
  return {std::move(sum), total};
}

std::vector<float> divided(const std::vector<double>& sum, double divisor) {
  std::vector<float> mean(sum.size());
  for (std::size_t d = 0; d < sum.size(); ++d)
    mean[d] = divisor > 0 ? float(sum[d] / divisor) : 0.0f;
  return mean;
}

}  // namespace

double cosine_similarity(std::span<const float> a, std::span<const float> b) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

std::vector<float> image_embedding(std::span<const float> patches, std::size_t dim) {
  const std::size_t count = dim == 0 ? 0 : patches.size() / dim;
  return divided(weighted_sum_of_unit_patches(patches, dim, {}).first, double(count));
}

std::vector<float> defect_embedding(std::span<const float> patches, std::size_t dim,
                                    std::span<const float> patch_scores) {
  std::vector<float> sorted(patch_scores.begin(), patch_scores.end());
  if (sorted.empty()) return image_embedding(patches, dim);
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  const double median = sorted[sorted.size() / 2];
  std::vector<double> weights(patch_scores.size());
  for (std::size_t p = 0; p < weights.size(); ++p) {
    weights[p] = std::max(0.0, double(patch_scores[p]) - median);
  }
  const auto [sum, total] = weighted_sum_of_unit_patches(patches, dim, weights);
  return total > 0 ? divided(sum, total) : image_embedding(patches, dim);
}

}  // namespace pv
