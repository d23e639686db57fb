#include "sampling/k_center_greedy.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <patchvec/error.h>

#include "sampling/bf16_dot.h"

namespace pv::sampling {
namespace {

// Rounding slack for the pruning tests (distances come from |a|^2 + |b|^2 - 2 a.b in float32):
// pruning must never skip a point the textbook loop would move.
constexpr float kSlack = 1.0f + 1e-4f;

// Points are stored as bfloat16: half the memory of float32, and products run on the CPU's
// bf16 dot-product instructions. The rounding (2^-8 relative per coordinate) is far below the
// random projection's own distortion; the selection is exact greedy k-center on the rounded
// points, with squared distances |a|^2 + |b|^2 - 2 a.b accumulated in float32.
class Bf16Points {
 public:
  explicit Bf16Points(const at::Tensor& points)
      : storage_(points.to(at::kBFloat16).contiguous()),
        norms_(at::empty({points.size(0)}, at::kFloat)),
        data_(reinterpret_cast<const Bf16*>(storage_.data_ptr<c10::BFloat16>())),
        squared_norms_(norms_.data_ptr<float>()),
        dim_(points.size(1)),
        dot_(bf16_dot()) {
    // Row by row: a float copy of all points would double the memory of the largest object here.
    float* norms = norms_.data_ptr<float>();
    at::parallel_for(0, points.size(0), 4096, [&](std::int64_t begin, std::int64_t end) {
      for (auto i = begin; i < end; ++i) norms[i] = dot_(row(i), row(i), dim_);
    });
  }

  float squared_distance(std::int64_t i, std::int64_t j) const {
    const float d2 = squared_norms_[i] + squared_norms_[j] - 2 * dot_(row(i), row(j), dim_);
    return d2 > 0 ? d2 : 0;
  }

  // Points are read in an order the hardware cannot guess: ask for the next rows early.
  void prefetch(std::int64_t i) const {
    const auto* bytes = reinterpret_cast<const char*>(row(i));
    for (std::int64_t offset = 0; offset < dim_ * 2; offset += 64)
      __builtin_prefetch(bytes + offset);
  }

 private:
  const Bf16* row(std::int64_t i) const { return data_ + i * dim_; }

  at::Tensor storage_;
  at::Tensor norms_;
  const Bf16* data_;
  const float* squared_norms_;
  std::int64_t dim_;
  Bf16DotFn dot_;
};

void validate(const at::Tensor& points, const KCenterOptions& options) {
  if (points.dim() != 2 || points.size(0) == 0) {
    throw Error("coreset selection needs a non-empty N x d matrix of points");
  }
  if (options.centers < 1 || options.centers > points.size(0)) {
    throw Error("coreset selection: cannot pick " + std::to_string(options.centers) +
                " centres from " + std::to_string(points.size(0)) + " points");
  }
}

std::int64_t random_start(std::int64_t count, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  return std::uniform_int_distribution<std::int64_t>(0, count - 1)(random);
}

// One centre and the points closest to it.
struct Cluster {
  std::int64_t center = 0;  // point index
  std::vector<std::int32_t> members;
  float radius2 = 0;           // max squared distance of a member
  std::int32_t farthest = -1;  // that member (-1 when the cluster is only its centre)
};

// The members a new centre at squared distance `to_center` from the cluster's centre could take:
// |x - i| >= |x - c| - |i - c|, so only those with |x - c| < 2 |i - c|.
void candidates_of(const Cluster& cluster, float to_center, const float* min_d2,
                   std::vector<std::int32_t>& out) {
  out.clear();
  for (const auto i : cluster.members) {
    if (to_center < 4 * min_d2[i] * kSlack && i != cluster.center) out.push_back(i);
  }
}

void refresh_radius(Cluster& cluster, const float* min_d2) {
  cluster.radius2 = 0;
  cluster.farthest = -1;
  for (const auto i : cluster.members) {
    if (min_d2[i] > cluster.radius2) {
      cluster.radius2 = min_d2[i];
      cluster.farthest = i;
    }
  }
}

}  // namespace

// Below these, a step of the selection runs on one thread (see greedy_k_center).
constexpr std::int64_t kSerialCentres = 4096;  // centre distances
constexpr std::int64_t kSerialWork = 65536;    // member points of the clusters a centre touches

KCenterResult greedy_k_center(const at::Tensor& input, const KCenterOptions& options) {
  validate(input, options);
  const Bf16Points points(input);
  const std::int64_t count = input.size(0);

  std::vector<float> min_d2(count);
  std::vector<Cluster> clusters;
  clusters.reserve(options.centers);
  KCenterResult result;

  // The first centre owns every point.
  const std::int64_t first = random_start(count, options.seed);
  at::parallel_for(0, count, 2048, [&](std::int64_t begin, std::int64_t end) {
    for (auto i = begin; i < end; ++i) min_d2[i] = points.squared_distance(i, first);
  });
  min_d2[first] = 0;
  Cluster root{.center = first};
  root.members.resize(count);
  for (std::int64_t i = 0; i < count; ++i) root.members[i] = static_cast<std::int32_t>(i);
  refresh_radius(root, min_d2.data());
  clusters.push_back(std::move(root));
  result.indices.push_back(first);
  if (options.on_progress) options.on_progress(1);

  std::vector<float> center_d2;
  const int threads = at::get_num_threads();
  std::vector<std::vector<std::int32_t>> moved(threads);
  std::vector<std::vector<std::int32_t>> scratch(threads);
  std::vector<std::uint8_t> leaving(count, 0);
  while (static_cast<std::int64_t>(result.indices.size()) < options.centers) {
    // The next centre: the point farthest from all centres.
    const auto widest =
        std::max_element(clusters.begin(), clusters.end(),
                         [](const Cluster& a, const Cluster& b) { return a.radius2 < b.radius2; });
    if (widest->farthest < 0) break;  // every point is a centre or a duplicate of one
    const std::int64_t x = widest->farthest;

    // Distances from x to every centre, then the clusters x may take points from.
    center_d2.resize(clusters.size());
    // Small steps run on this thread: a parallel region per centre costs barriers, and a barrier
    // waits for its slowest thread, which on a busy machine is one the OS put aside (measured:
    // a coreset of 0.6 s took 17.7 s with two other processes busy).
    const auto cluster_count = static_cast<std::int64_t>(clusters.size());
    at::parallel_for(0, cluster_count, std::max<std::int64_t>(kSerialCentres, 256),
                     [&](std::int64_t begin, std::int64_t end) {
                       for (auto c = begin; c < end; ++c) {
                         center_d2[c] = points.squared_distance(clusters[c].center, x);
                       }
                     });
    std::vector<std::int64_t> touched;
    for (std::size_t c = 0; c < clusters.size(); ++c) {
      // |x - c| >= 2 r_c means no member i (|i - c| <= r_c) is closer to x than to c.
      if (center_d2[c] < 4 * clusters[c].radius2 * kSlack)
        touched.push_back(static_cast<std::int64_t>(c));
    }
    for (auto& list : moved) list.clear();
    // Cluster sizes vary by orders of magnitude: hand them out one at a time, and on several
    // threads only when there is enough work to share (see above).
    const auto touched_count = static_cast<std::int64_t>(touched.size());
    std::int64_t work = 0;
    for (const auto c : touched) work += static_cast<std::int64_t>(clusters[c].members.size());
    const bool share = threads > 1 && touched_count > 1 && work >= kSerialWork;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (share)
    for (std::int64_t t = 0; t < touched_count; ++t) {
      const int thread = omp_get_thread_num();
      auto& taken = moved[thread];
      auto& candidates = scratch[thread];
      Cluster& cluster = clusters[touched[t]];
      candidates_of(cluster, center_d2[touched[t]], min_d2.data(), candidates);
      if (candidates.empty()) continue;
      constexpr std::size_t kAhead = 4;
      for (std::size_t j = 0; j < std::min(kAhead, candidates.size()); ++j)
        points.prefetch(candidates[j]);
      const std::size_t taken_before = taken.size();
      for (std::size_t j = 0; j < candidates.size(); ++j) {
        if (j + kAhead < candidates.size()) points.prefetch(candidates[j + kAhead]);
        const auto i = candidates[j];
        const float d2 = points.squared_distance(i, x);
        if (d2 < min_d2[i]) {
          min_d2[i] = d2;
          taken.push_back(i);
          leaving[i] = 1;
        }
      }
      if (taken.size() == taken_before) continue;  // nobody left: members and radius unchanged
      std::size_t kept = 0;
      cluster.radius2 = 0;
      cluster.farthest = -1;
      for (const auto i : cluster.members) {
        if (leaving[i]) {
          leaving[i] = 0;
          continue;
        }
        cluster.members[kept++] = i;
        if (min_d2[i] > cluster.radius2) {
          cluster.radius2 = min_d2[i];
          cluster.farthest = i;
        }
      }
      cluster.members.resize(kept);
    }
    Cluster fresh{.center = x};
    for (const auto& list : moved)
      fresh.members.insert(fresh.members.end(), list.begin(), list.end());
    min_d2[x] = 0;
    refresh_radius(fresh, min_d2.data());
    clusters.push_back(std::move(fresh));
    result.indices.push_back(x);
    if (options.on_progress) options.on_progress(static_cast<std::int64_t>(result.indices.size()));
  }

  // Only duplicates are left: any of them will do.
  std::vector<bool> chosen(count, false);
  for (const auto i : result.indices) chosen[i] = true;
  for (std::int64_t i = 0; static_cast<std::int64_t>(result.indices.size()) < options.centers;
       ++i) {
    if (!chosen[i]) result.indices.push_back(i);
  }
  const float covering =
      std::max_element(clusters.begin(), clusters.end(), [](const Cluster& a, const Cluster& b) {
        return a.radius2 < b.radius2;
      })->radius2;
  result.covering_radius = std::sqrt(static_cast<double>(covering));
  return result;
}

KCenterResult greedy_k_center_naive(const at::Tensor& input, const KCenterOptions& options) {
  validate(input, options);
  // The same rounded points as the fast version works on.
  const at::Tensor points = input.to(at::kBFloat16).to(at::kFloat).contiguous();
  KCenterResult result;
  std::int64_t next = random_start(points.size(0), options.seed);
  at::Tensor min_d2 = at::full({points.size(0)}, std::numeric_limits<float>::infinity());
  for (std::int64_t selected = 0; selected < options.centers; ++selected) {
    result.indices.push_back(next);
    min_d2 = at::minimum(min_d2, (points - points[next]).pow(2).sum(1));
    next = min_d2.argmax().item<std::int64_t>();
    if (options.on_progress) options.on_progress(selected + 1);
  }
  result.covering_radius = std::sqrt(min_d2.max().item<double>());
  return result;
}

}  // namespace pv::sampling
