#include "sampling/k_center_greedy.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <patchvec/error.h>
#include <patchvec/system.h>

#include "util/int16_products.h"

namespace pv {

const char* coreset_method_name(CoresetMethod method) {
  return method == CoresetMethod::kExact ? "exact" : "fast";
}

CoresetMethod parse_coreset_method(std::string_view name, std::string_view setting) {
  for (const CoresetMethod method : {CoresetMethod::kExact, CoresetMethod::kFast}) {
    if (name == coreset_method_name(method)) return method;
  }
  throw Error(std::string(setting) + " is '" + std::string(name) + "', not exact or fast");
}

}  // namespace pv

namespace pv::sampling {
namespace {

// Rounding slack for the pruning tests (squared distances are exact on the grid, then rounded to
// float32, and the tests multiply them in float32): pruning must never skip a point the textbook
// loop would move.
constexpr float kSlack = 1.0f + 1e-4f;
// The same for bounds on distances themselves (region pruning): relative, plus distance_margin().
constexpr float kBoundSlack = 1.0f + 1e-3f;

// Points on a fixed-point grid: 16-bit integer coordinates times one step, a power of two, the
// finest on which every point's integers fit int16 and its length stays below sqrt(2^31), so that
// every dot product of two points is exact in int32 (int16_grid_step: a step of 1/16,000 to
// 1/46,000 of the longest point's length; the rounding is far below the projection's own
// distortion). Half the memory of float32, and products run on int16 multiply-adds, twice
// float32's per instruction on AVX2 (int16_products.h). Squared distances |a|^2 + |b|^2 - 2 a.b
// are exact in grid units (double), then rounded to float32 where they are kept: the selection
// is exact greedy k-center on the grid points, every way of measuring giving the same numbers.
class GridPoints {
 public:
  explicit GridPoints(const at::Tensor& points)
      : count_(points.size(0)), dim_(points.size(1) + points.size(1) % 2), norms_(count_) {
    constexpr std::int64_t kChunk = 65536;  // rows converted at once (no float copy of all)
    const std::int64_t given = points.size(1);
    Int16GridBounds bounds;
    for (std::int64_t begin = 0; begin < count_; begin += kChunk) {
      const at::Tensor rows =
          points.narrow(0, begin, std::min(kChunk, count_ - begin)).to(at::kFloat).contiguous();
      const Int16GridBounds chunk = int16_grid_bounds(rows.data_ptr<float>(), rows.size(0), given);
      if (!chunk.finite) throw Error("coreset selection: the points hold NaN or infinite values");
      bounds.largest = std::max(bounds.largest, chunk.largest);
      bounds.longest = std::max(bounds.longest, chunk.longest);
    }
    step_ = int16_grid_step(bounds.largest, bounds.longest, dim_);
    storage_ = at::empty({count_, dim_}, at::kShort);
    data_ = storage_.data_ptr<std::int16_t>();
    for (std::int64_t begin = 0; begin < count_; begin += kChunk) {
      const at::Tensor rows =
          points.narrow(0, begin, std::min(kChunk, count_ - begin)).to(at::kFloat).contiguous();
      to_int16_grid(rows.data_ptr<float>(), rows.size(0), given, step_,
                    storage_.data_ptr<std::int16_t>() + begin * dim_, dim_);
    }
    at::parallel_for(0, count_, 4096, [&](std::int64_t begin, std::int64_t end) {
      for (auto i = begin; i < end; ++i) norms_[i] = dot_(row(i), row(i), dim_);
    });
  }

  // Squared distance in grid units, exact, rounded to float32.
  float squared_distance(std::int64_t i, std::int64_t j) const {
    return static_cast<float>(norms_[i] + norms_[j] - 2.0 * dot_(row(i), row(j), dim_));
  }

  std::int64_t count() const { return count_; }
  std::int64_t dim() const { return dim_; }  // even: an odd input dimension gets a zero column
  double squared_norm(std::int64_t i) const { return norms_[i]; }
  double step() const { return step_; }  // a grid unit in the input's units
  // The points in the input's units, float64 (exact).
  at::Tensor coordinates() const { return storage_.to(at::kDouble) * step_; }
  const std::int16_t* data() const { return data_; }

  // Columns for int16_products(): the points `indices`.
  Int16Panels panels(const std::vector<std::int64_t>& indices) const {
    return pack_int16_panels(data_, indices.data(), static_cast<std::int64_t>(indices.size()),
                             dim_);
  }

  // An absolute bound on the rounding error of a distance (not squared), in grid units.
  float distance_margin() const {
    double largest = 0;
    for (std::int64_t i = 0; i < count_; ++i) largest = std::max(largest, norms_[i]);
    return static_cast<float>(1e-3 * std::sqrt(largest) + 1e-6);
  }

  // Points are read in an order the hardware cannot guess: ask for the next rows early.
  void prefetch(std::int64_t i) const {
    const auto* bytes = reinterpret_cast<const char*>(row(i));
    for (std::int64_t offset = 0; offset < dim_ * 2; offset += 64)
      __builtin_prefetch(bytes + offset);
  }

 private:
  const std::int16_t* row(std::int64_t i) const { return data_ + i * dim_; }

  std::int64_t count_;
  std::int64_t dim_;
  double step_ = 1;
  at::Tensor storage_;  // count x dim, int16
  const std::int16_t* data_ = nullptr;
  std::vector<double> norms_;  // squared norms in grid units, exact
  Int16DotFn dot_ = int16_dot();
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
  std::uint32_t version = 0;   // changes whenever members or radius do (see Candidates)
  float offset = 0;            // distance from its centre to its region's centre
  std::int32_t region = -1;    // the region it is filed under (-1: none, or a region itself)
};

// Largest squared distance first; equal ones by point index, so that the selection never
// depends on the order members happen to be in.
void refresh_radius(Cluster& cluster, const float* min_d2) {
  cluster.radius2 = 0;
  cluster.farthest = -1;
  for (const auto i : cluster.members) {
    if (min_d2[i] > cluster.radius2 ||
        (min_d2[i] == cluster.radius2 && cluster.farthest >= 0 && i < cluster.farthest)) {
      cluster.radius2 = min_d2[i];
      cluster.farthest = i;
    }
  }
  ++cluster.version;
}

// The clusters by radius, widest first: a heap of (radius, cluster, version) entries where an
// entry is stale once its cluster's version moved on (pushed again instead of updated in place).
// The caller keeps exactly one current entry per cluster: it pushes a cluster again when it
// changed or when its entry was popped.
class Candidates {
 public:
  void push(const Cluster& cluster, std::int32_t index) {
    heap_.push_back({cluster.radius2, cluster.farthest, index, cluster.version});
    std::push_heap(heap_.begin(), heap_.end(), Entry::less);
  }

  // The widest cluster whose entry is current, removed from the heap; -1 when none is left.
  std::int32_t pop(const std::vector<Cluster>& clusters) {
    while (!heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), Entry::less);
      const Entry top = heap_.back();
      heap_.pop_back();
      if (clusters[top.cluster].version == top.version) return top.cluster;
    }
    return -1;
  }

  // The widest current radius (squared), without removing it.
  float widest(const std::vector<Cluster>& clusters) {
    while (!heap_.empty() && clusters[heap_.front().cluster].version != heap_.front().version) {
      std::pop_heap(heap_.begin(), heap_.end(), Entry::less);
      heap_.pop_back();
    }
    return heap_.empty() ? 0 : heap_.front().radius2;
  }

 private:
  struct Entry {
    float radius2;
    std::int32_t farthest;
    std::int32_t cluster;
    std::uint32_t version;
    static bool less(const Entry& a, const Entry& b) {
      if (a.radius2 != b.radius2) return a.radius2 < b.radius2;
      return a.farthest > b.farthest;  // equal radii: the lower point index first
    }
  };
  std::vector<Entry> heap_;
};

// A point a new centre takes from its cluster (phase 2 of a round).
struct Proposal {
  std::int32_t point;
  std::int32_t centre;  // index into the round's new centres
  float d2;
};

// Below this many member points to examine, a round's work stays on this thread: a parallel
// region costs barriers, and a barrier waits for its slowest thread, which on a busy machine is
// one the OS put aside (measured before this rule: a coreset of 0.6 s took 17.7 s with two other
// processes busy).
constexpr std::int64_t kSerialWork = 65536;
// Centres are filed under the nearest of the first kRegions centres, so that a new centre can skip
// whole regions by the triangle inequality instead of measuring its distance to every centre.
constexpr std::int64_t kRegions = 256;
// The fast method: how far below the widest radius a round's centres may be, and at most how many
// a round takes (see KCenterOptions).
constexpr double kFastEpsilon = 0.05;
constexpr std::int64_t kFastBatch = 1024;
// Member lists are handed out in pieces of this many points (a first cluster holds them all).
constexpr std::int64_t kPiece = 8192;
// How many of a round's centres are asked how much the bounds would leave them to measure.
constexpr std::int64_t kDenseSample = 16;
// Points a dense round multiplies at once against the round's centres (one matrix product each).
constexpr std::int64_t kDenseBlock = 2048;

// One point's squared distances to `count` centres from its products with them (`dots`; the
// point's squared norm `norm`, the centres' `centre_norms`): into `out`, exact (grid units, in
// double); returns the smallest. Vectorised by the compiler (a min reduction).
inline double squared_distances(const std::int32_t* dots, const double* centre_norms,
                                std::int64_t count, double norm, double* out) {
  double lowest = std::numeric_limits<double>::infinity();
#pragma omp simd reduction(min : lowest)
  for (std::int64_t j = 0; j < count; ++j) {
    const double d2 = norm + centre_norms[j] - 2.0 * dots[j];
    out[j] = d2;
    lowest = std::min(lowest, d2);
  }
  return lowest;
}

__attribute__((target("avx2"))) double squared_distances_avx2(const std::int32_t* dots,
                                                              const double* centre_norms,
                                                              std::int64_t count, double norm,
                                                              double* out) {
  return squared_distances(dots, centre_norms, count, norm, out);
}

// One row of products `dots` (a point against `count` centres; `scratch` holds `count` doubles):
// lowers `best` (a squared distance, float32) and sets `nearest` to the first centre strictly
// nearer in float32, so that ties go to the lower index, as the bounded measure breaks them.
inline void nearest_centre(const std::int32_t* dots, const double* centre_norms, std::int64_t count,
                           double norm, std::int32_t first_index, float& best,
                           std::int32_t& nearest, double* scratch) {
  const double lowest = cpu_has_avx2()
                            ? squared_distances_avx2(dots, centre_norms, count, norm, scratch)
                            : squared_distances(dots, centre_norms, count, norm, scratch);
  const auto rounded = static_cast<float>(lowest);
  if (!(rounded < best)) return;
  for (std::int64_t j = 0; j < count; ++j) {
    if (static_cast<float>(scratch[j]) == rounded) {
      best = rounded;
      nearest = first_index + static_cast<std::int32_t>(j);
      return;
    }
  }
}

// Greedy k-center in rounds. A round takes the widest clusters' farthest points that are still at
// least (1 - epsilon) times the widest radius away from every centre, counting the ones the round
// took before them, and adds them as centres at once; epsilon = 0 and one centre per round is the
// exact greedy. Rounds are what runs in parallel: measuring a round's centres against the clusters
// they can take points from, and the points themselves.
class Selection {
 public:
  // `held_out`: points left out until take_in() (null: none); `first` is not one of them.
  Selection(const GridPoints& points, std::int64_t first, int threads, double dense_above,
            double freeze_below, const std::vector<bool>* held_out = nullptr)
      : points_(points),
        count_(points.count()),
        threads_(threads),
        dense_above_(dense_above),
        freeze_below_(freeze_below),
        margin_(points.distance_margin()),
        min_d2_(count_),
        best_d2_(count_, std::numeric_limits<float>::infinity()),
        best_centre_(count_, -1),
        leaving_(count_, 0),
        owner_(count_, 0),
        since_(count_, -1),
        scratch_(threads),
        reach_(kRegions, 0),
        region_members_(kRegions) {
    // A point held out looks like a centre until it is taken in: at distance 0, in no cluster.
    at::parallel_for(0, count_, 2048, [&](std::int64_t begin, std::int64_t end) {
      for (auto i = begin; i < end; ++i) {
        min_d2_[i] = held_out != nullptr && (*held_out)[i] ? 0 : points_.squared_distance(i, first);
      }
    });
    min_d2_[first] = 0;
    Cluster root{.center = first};
    root.members.reserve(count_);
    for (std::int64_t i = 0; i < count_; ++i) {
      if (held_out == nullptr || !(*held_out)[i])
        root.members.push_back(static_cast<std::int32_t>(i));
    }
    active_ = static_cast<std::int64_t>(root.members.size());
    live_ = root.members;
    if (held_out != nullptr) held_out_ = *held_out;
    refresh_radius(root, min_d2_.data());
    clusters_.push_back(std::move(root));
    candidates_.push(clusters_[0], 0);
  }

  // Adds at most `limit` centres (at least one unless every point is a centre or a duplicate of
  // one) and returns them in selection order.
  std::vector<std::int64_t> round(double epsilon, std::int64_t limit);

  // The exact covering radius (squared): frozen points it could come from are thawed first.
  float covering_radius2() { return settle(0.0); }
  std::int64_t clusters() const { return static_cast<std::int64_t>(clusters_.size()); }
  // Takes the held-out points in: each joins the cluster of its nearest centre (the radii they
  // widen are the rounds' to shrink again). `centres`: every centre so far, in selection order.
  void take_in(const std::vector<std::int64_t>& centres);
  std::int64_t dense_rounds() const { return dense_rounds_; }
  std::int64_t products() const { return products_; }

 private:
  // The widest radius (squared) once every frozen point whose distance reaches its floor
  // ((1 - epsilon) of it) has been thawed: that radius and every point a round may choose are
  // then exact.
  float settle(double epsilon);
  // Measures frozen `points` against the dense rounds' centres they missed, moves those a centre
  // took, and makes them live again.
  void thaw(std::vector<std::int32_t>& points, float freeze2);
  // After points joined (take_in(), thaw()) or left the clusters `changed` (sorted and made
  // unique here): their radii, which may have grown, their regions' reach and heap entries.
  void refresh_grown(std::vector<std::int32_t>& changed);
  // Clusters a centre x may take points from (|x - c| < 2 r_c), with |x - c|^2 each.
  void touched_by(std::int64_t x, std::vector<std::pair<std::int32_t, float>>& touched,
                  std::vector<float>& region_d) const;
  // Distances from x to the region centres (the first kRegions clusters' centres).
  void region_distances(std::int64_t x, std::vector<float>& region_d) const;
  void file_under_region(std::int32_t index, const std::vector<float>& region_d);
  // Whether the round's centres are better measured against every point by matrix products than
  // cluster by cluster: asks a sample of them what the bounds leave (`touched` and `region_d`
  // hold the sample's answers; with the bounds, the caller completes them).
  bool dense_round(const std::vector<std::int64_t>& centres,
                   std::vector<std::vector<std::pair<std::int32_t, float>>>& touched,
                   std::vector<std::vector<float>>& region_d,
                   std::vector<std::uint8_t>& asked) const;
  // Phase 2 by the bounds: the points the centres take, into best_d2_/best_centre_ and `moved`.
  void measure_bounded(const std::vector<std::int64_t>& centres,
                       const std::vector<std::vector<std::pair<std::int32_t, float>>>& touched,
                       std::vector<std::int32_t>& moved);
  // Phase 2 by matrix products: every live point against every centre of the round, after
  // freezing the live points whose squared distance is below `freeze2`.
  void measure_dense(const std::vector<std::int64_t>& centres, float freeze2,
                     std::vector<std::int32_t>& moved);

  const GridPoints& points_;
  const std::int64_t count_;
  const int threads_;
  const double dense_above_;
  const double freeze_below_;
  const float margin_;
  std::vector<float> min_d2_;  // squared distance of each point to its nearest centre
  std::vector<Cluster> clusters_;
  Candidates candidates_;
  std::vector<float> best_d2_;  // within a round: the nearest new centre of a point
  std::vector<std::int32_t> best_centre_;
  std::vector<std::uint8_t> leaving_;
  std::vector<std::int32_t> owner_;  // the cluster each point belongs to
  // Per point: -1 when measured against every centre; else the first centre (its cluster's
  // index: clusters are made in selection order) of the dense rounds it was frozen through. A
  // frozen point's min_d2_ is the distance to its owner, an upper bound of the true one.
  std::vector<std::int32_t> since_;
  std::int64_t frozen_ = 0;
  std::vector<std::int32_t> live_;  // the points dense rounds measure, ascending
  // Every dense round's centres, which frozen points are measured against when they thaw.
  struct Batch {
    std::int32_t first;  // the first centre's index
    Int16Panels panels;
    std::vector<double> norms;
  };
  std::vector<Batch> batches_;
  std::int64_t products_ = 0;
  // Per thread, reused by every block of products (fresh allocations of this size cost page
  // faults).
  struct Scratch {
    std::vector<std::int32_t> dots;  // kDenseBlock x (at most) kFastBatch
    std::vector<double> distances;   // one row of them
  };
  std::vector<Scratch> scratch_;
  // This thread's scratch.
  Scratch& scratch();
  std::vector<float> reach_;  // per region: max over its clusters of offset + 2 radius
  std::vector<std::vector<std::int32_t>> region_members_;
  std::int64_t dense_rounds_ = 0;
  std::int64_t active_ = 0;     // points taken in so far
  std::vector<bool> held_out_;  // until take_in(); empty: none
};

void Selection::touched_by(std::int64_t x, std::vector<std::pair<std::int32_t, float>>& touched,
                           std::vector<float>& region_d) const {
  touched.clear();
  const auto regions =
      std::min<std::int64_t>(static_cast<std::int64_t>(clusters_.size()), kRegions);
  region_d.resize(regions);
  auto consider = [&](std::int32_t c, float d2) {
    // |x - c| >= 2 r_c: no member i (|i - c| <= r_c) is closer to x than to c.
    if (d2 < 4 * clusters_[c].radius2 * kSlack) touched.emplace_back(c, d2);
  };
  for (std::int64_t g = 0; g < regions; ++g) {
    const float d2 = points_.squared_distance(clusters_[g].center, x);
    region_d[g] = std::sqrt(d2);
    consider(static_cast<std::int32_t>(g), d2);
  }
  for (std::int64_t g = 0; g < regions; ++g) {
    // |x - c| >= |x - g| - |c - g|: a region's clusters all lie within reach.
    if (region_d[g] >= reach_[g] * kBoundSlack + margin_) continue;
    for (const auto c : region_members_[g]) {
      const Cluster& cluster = clusters_[c];
      const float lower = region_d[g] - cluster.offset;
      if (lower > 0 && lower >= 2 * std::sqrt(cluster.radius2) * kBoundSlack + margin_) continue;
      consider(c, points_.squared_distance(cluster.center, x));
    }
  }
}

void Selection::region_distances(std::int64_t x, std::vector<float>& region_d) const {
  const auto regions =
      std::min<std::int64_t>(static_cast<std::int64_t>(clusters_.size()), kRegions);
  region_d.resize(regions);
  for (std::int64_t g = 0; g < regions; ++g) {
    region_d[g] = std::sqrt(points_.squared_distance(clusters_[g].center, x));
  }
}

bool Selection::dense_round(const std::vector<std::int64_t>& centres,
                            std::vector<std::vector<std::pair<std::int32_t, float>>>& touched,
                            std::vector<std::vector<float>>& region_d,
                            std::vector<std::uint8_t>& asked) const {
  const auto n = static_cast<std::int64_t>(centres.size());
  if (!(dense_above_ <= 1)) return false;
  const std::int64_t sample = std::min(n, kDenseSample);
  std::vector<std::int64_t> members(sample, 0);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_) if (threads_ > 1 && sample > 1)
  for (std::int64_t s = 0; s < sample; ++s) {
    const std::int64_t j = s * n / sample;
    touched_by(centres[j], touched[j], region_d[j]);
    for (const auto& [c, d2] : touched[j]) {
      members[s] += static_cast<std::int64_t>(clusters_[c].members.size());
    }
  }
  std::int64_t work = 0;
  for (std::int64_t s = 0; s < sample; ++s) {
    work += members[s];
    asked[s * n / sample] = 1;
  }
  // The bounds leave `work` points to measure for `sample` centres; the products measure them all.
  return static_cast<double>(work) * static_cast<double>(n) >
         dense_above_ * static_cast<double>(active_) * static_cast<double>(n) *
             static_cast<double>(sample);
}

void Selection::measure_dense(const std::vector<std::int64_t>& centres, float freeze2,
                              std::vector<std::int32_t>& moved) {
  const auto n = static_cast<std::int64_t>(centres.size());
  const auto first = static_cast<std::int32_t>(clusters_.size());  // the round's first centre
  if (freeze2 > 0) {
    std::erase_if(live_, [&](std::int32_t i) {
      if (!(min_d2_[i] < freeze2)) return false;
      since_[i] = first;
      ++frozen_;
      return true;
    });
  }
  Batch batch{.first = first, .panels = points_.panels(centres), .norms = std::vector<double>(n)};
  for (std::int64_t j = 0; j < n; ++j) batch.norms[j] = points_.squared_norm(centres[j]);
  const std::vector<double>& centre_norms = batch.norms;
  const auto live = static_cast<std::int64_t>(live_.size());
  products_ += live * n;
  const std::int64_t blocks = (live + kDenseBlock - 1) / kDenseBlock;
  std::vector<std::vector<std::int32_t>> taken(threads_);
  // One block of products per thread at a time (exact: the same numbers whatever the threads).
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_) if (threads_ > 1 && blocks > 1)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t begin = b * kDenseBlock;
    const std::int64_t rows = std::min(kDenseBlock, live - begin);
    Scratch& mine = scratch();
    int16_products(points_.data(), live_.data() + begin, rows, batch.panels, mine.dots.data());
    const std::int32_t* row = mine.dots.data();
    auto& out = taken[omp_get_thread_num()];
    for (std::int64_t r = 0; r < rows; ++r, row += n) {
      const std::int64_t i = live_[begin + r];
      float best = min_d2_[i];
      std::int32_t nearest = -1;
      nearest_centre(row, centre_norms.data(), n, points_.squared_norm(i), 0, best, nearest,
                     mine.distances.data());
      if (nearest >= 0) {
        best_d2_[i] = best;
        best_centre_[i] = nearest;
        out.push_back(static_cast<std::int32_t>(i));
      }
    }
  }
  for (const auto& list : taken) moved.insert(moved.end(), list.begin(), list.end());
  batches_.push_back(std::move(batch));
}

Selection::Scratch& Selection::scratch() {
  Scratch& mine = scratch_[omp_get_thread_num()];
  if (mine.dots.empty()) {
    mine.dots.resize(kDenseBlock * kFastBatch);
    mine.distances.resize(kFastBatch);
  }
  return mine;
}

float Selection::settle(double epsilon) {
  float widest = candidates_.widest(clusters_);
  while (frozen_ > 0) {
    const auto floor2 = static_cast<float>(widest * (1 - epsilon) * (1 - epsilon));
    std::vector<std::int32_t> thawing;
    for (std::int64_t i = 0; i < count_; ++i) {
      if (since_[i] >= 0 && min_d2_[i] >= floor2) thawing.push_back(static_cast<std::int32_t>(i));
    }
    if (thawing.empty()) break;
    thaw(thawing, static_cast<float>(floor2 * freeze_below_ * freeze_below_));
    widest = candidates_.widest(clusters_);
  }
  return widest;
}

void Selection::thaw(std::vector<std::int32_t>& points, float freeze2) {
  // Blocks of points frozen about as long: a block is measured from its earliest batch on (a
  // centre measured again changes nothing).
  std::sort(points.begin(), points.end(), [&](std::int32_t a, std::int32_t b) {
    return since_[a] != since_[b] ? since_[a] < since_[b] : a < b;
  });
  const auto m = static_cast<std::int64_t>(points.size());
  std::vector<float> nearest_d2(m);
  std::vector<std::int32_t> nearest(m, -1);
  for (std::int64_t r = 0; r < m; ++r) nearest_d2[r] = min_d2_[points[r]];
  const std::int64_t blocks = (m + kDenseBlock - 1) / kDenseBlock;
  std::vector<std::int64_t> counted(blocks, 0);
  // Where each point stops: -1 measured to the end and still outside the freeze level (live
  // again); else frozen again, before the first batch it has not been measured against.
  std::vector<std::int32_t> resume(m, -1);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_) if (threads_ > 1 && blocks > 1)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t begin = b * kDenseBlock;
    const std::int32_t since = since_[points[begin]];
    std::vector<std::int64_t> active;  // rows (of `points`) still measured
    std::vector<std::int32_t> ids;     // their points
    for (std::int64_t r = begin; r < std::min(begin + kDenseBlock, m); ++r) {
      active.push_back(r);
      ids.push_back(points[r]);
    }
    Scratch& mine = scratch();
    for (const Batch& batch : batches_) {
      const auto cols = static_cast<std::int64_t>(batch.norms.size());
      if (batch.first + cols <= since) continue;
      if (active.empty()) break;
      const auto rows = static_cast<std::int64_t>(active.size());
      int16_products(points_.data(), ids.data(), rows, batch.panels, mine.dots.data());
      const std::int32_t* row = mine.dots.data();
      for (const auto r : active) {
        nearest_centre(row, batch.norms.data(), cols, points_.squared_norm(points[r]), batch.first,
                       nearest_d2[r], nearest[r], mine.distances.data());
        row += cols;
      }
      counted[b] += rows * cols;
      // A point back inside the freeze level needs no more of the batches until the floor comes
      // down to it again.
      std::size_t kept = 0;
      for (std::size_t a = 0; a < active.size(); ++a) {
        if (nearest_d2[active[a]] < freeze2) {
          resume[active[a]] = static_cast<std::int32_t>(batch.first + cols);
        } else {
          active[kept] = active[a];
          ids[kept++] = ids[a];
        }
      }
      active.resize(kept);
      ids.resize(kept);
    }
  }
  for (const auto p : counted) products_ += p;
  // The points a centre took leave their clusters for its cluster (as in round()).
  std::vector<std::int32_t> changed;
  for (std::int64_t r = 0; r < m; ++r) {
    if (nearest[r] < 0) continue;
    changed.push_back(owner_[points[r]]);
    leaving_[points[r]] = 1;
  }
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  for (const auto c : changed) {
    std::erase_if(clusters_[c].members, [&](std::int32_t i) { return leaving_[i] != 0; });
  }
  std::vector<std::int32_t> live;
  for (std::int64_t r = 0; r < m; ++r) {
    const std::int32_t i = points[r];
    since_[i] = resume[r];
    if (resume[r] < 0) live.push_back(i);
    if (nearest[r] < 0) continue;
    leaving_[i] = 0;
    min_d2_[i] = nearest_d2[r];
    owner_[i] = nearest[r];
    clusters_[nearest[r]].members.push_back(i);
    changed.push_back(nearest[r]);
  }
  frozen_ -= static_cast<std::int64_t>(live.size());
  std::sort(live.begin(), live.end());
  const auto middle = static_cast<std::ptrdiff_t>(live_.size());
  live_.insert(live_.end(), live.begin(), live.end());
  std::inplace_merge(live_.begin(), live_.begin() + middle, live_.end());
  refresh_grown(changed);
}

void Selection::refresh_grown(std::vector<std::int32_t>& changed) {
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  for (const auto c : changed) {
    Cluster& cluster = clusters_[c];
    refresh_radius(cluster, min_d2_.data());
    // Radii otherwise only shrink; a region's reach must follow this one's growth.
    if (cluster.region >= 0) {
      reach_[cluster.region] =
          std::max(reach_[cluster.region], cluster.offset + 2 * std::sqrt(cluster.radius2));
    }
    candidates_.push(cluster, c);
  }
}

void Selection::measure_bounded(
    const std::vector<std::int64_t>& centres,
    const std::vector<std::vector<std::pair<std::int32_t, float>>>& touched,
    std::vector<std::int32_t>& moved) {
  struct Piece {
    std::int32_t centre;
    std::int32_t cluster;
    float center_d2;
    std::int64_t begin, end;
  };
  const auto n = static_cast<std::int64_t>(centres.size());
  std::vector<Piece> pieces;
  std::int64_t work = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    for (const auto& [c, d2] : touched[j]) {
      const auto size = static_cast<std::int64_t>(clusters_[c].members.size());
      for (std::int64_t begin = 0; begin < size; begin += kPiece) {
        pieces.push_back(
            {static_cast<std::int32_t>(j), c, d2, begin, std::min(size, begin + kPiece)});
      }
      work += size;
    }
  }
  std::vector<std::vector<Proposal>> proposals(threads_);
  const auto piece_count = static_cast<std::int64_t>(pieces.size());
  const bool share_pieces = threads_ > 1 && piece_count > 1 && (work >= kSerialWork || n > 1);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_) if (share_pieces)
  for (std::int64_t p = 0; p < piece_count; ++p) {
    const Piece& piece = pieces[p];
    const Cluster& cluster = clusters_[piece.cluster];
    const std::int64_t x = centres[piece.centre];
    auto& out = proposals[omp_get_thread_num()];
    constexpr std::int64_t kAhead = 4;
    // |x - i| >= |x - c| - |i - c|: only members with |x - c| < 2 |i - c| can move.
    std::int32_t ahead[kAhead];
    std::int64_t queued = 0;
    auto measure = [&](std::int32_t i) {
      const float d2 = points_.squared_distance(i, x);
      if (d2 < min_d2_[i]) out.push_back({i, piece.centre, d2});
    };
    for (std::int64_t m = piece.begin; m < piece.end; ++m) {
      const auto i = cluster.members[m];
      if (i == cluster.center || !(piece.center_d2 < 4 * min_d2_[i] * kSlack)) continue;
      points_.prefetch(i);
      if (queued == kAhead) {
        measure(ahead[0]);
        std::copy(ahead + 1, ahead + kAhead, ahead);
        --queued;
      }
      ahead[queued++] = i;
    }
    for (std::int64_t q = 0; q < queued; ++q) measure(ahead[q]);
  }
  // The nearest new centre of each point (the lower index on a tie).
  for (const auto& list : proposals) {
    for (const auto& p : list) {
      if (best_centre_[p.point] < 0) moved.push_back(p.point);
      if (p.d2 < best_d2_[p.point] ||
          (p.d2 == best_d2_[p.point] && p.centre < best_centre_[p.point])) {
        best_d2_[p.point] = p.d2;
        best_centre_[p.point] = p.centre;
      }
    }
  }
}

void Selection::take_in(const std::vector<std::int64_t>& centres) {
  if (held_out_.empty()) return;
  std::vector<std::int64_t> incoming;
  for (std::int64_t i = 0; i < count_; ++i) {
    if (held_out_[i]) incoming.push_back(i);
  }
  held_out_.clear();
  // Cluster c is centres[c]'s: clusters are made in selection order.
  const auto m = static_cast<std::int64_t>(incoming.size());
  const auto k = static_cast<std::int64_t>(centres.size());
  std::vector<float> nearest_d2(m, std::numeric_limits<float>::infinity());
  std::vector<std::int32_t> nearest(m, -1);
  std::vector<double> centre_norms(k);
  for (std::int64_t c = 0; c < k; ++c) centre_norms[c] = points_.squared_norm(centres[c]);
  std::vector<Int16Panels> panels;  // the centres packed once, kFastBatch at a time
  for (std::int64_t first = 0; first < k; first += kFastBatch) {
    panels.push_back(points_.panels(std::vector<std::int64_t>(
        centres.begin() + first, centres.begin() + std::min(k, first + kFastBatch))));
  }
  const std::vector<std::int32_t> rows_of(incoming.begin(), incoming.end());
  const std::int64_t blocks = (m + kDenseBlock - 1) / kDenseBlock;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_) if (threads_ > 1 && blocks > 1)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t begin = b * kDenseBlock;
    const std::int64_t rows = std::min(kDenseBlock, m - begin);
    Scratch& mine = scratch();
    for (std::size_t c = 0; c < panels.size(); ++c) {
      const std::int64_t first = static_cast<std::int64_t>(c) * kFastBatch;
      const std::int64_t cols = panels[c].count;
      int16_products(points_.data(), rows_of.data() + begin, rows, panels[c], mine.dots.data());
      const std::int32_t* row = mine.dots.data();
      for (std::int64_t r = 0; r < rows; ++r, row += cols) {
        nearest_centre(row, centre_norms.data() + first, cols,
                       points_.squared_norm(incoming[begin + r]), static_cast<std::int32_t>(first),
                       nearest_d2[begin + r], nearest[begin + r], mine.distances.data());
      }
    }
  }
  std::vector<std::int32_t> grown;
  for (std::int64_t r = 0; r < m; ++r) {
    const auto i = static_cast<std::int32_t>(incoming[r]);
    const std::int32_t c = nearest[r];
    min_d2_[i] = nearest_d2[r];
    owner_[i] = c;
    clusters_[c].members.push_back(i);
    grown.push_back(c);
  }
  refresh_grown(grown);
  active_ += m;
  for (const auto i : incoming) live_.push_back(static_cast<std::int32_t>(i));
  std::sort(live_.begin(), live_.end());
}

void Selection::file_under_region(std::int32_t index, const std::vector<float>& region_d) {
  Cluster& cluster = clusters_[index];
  if (index < kRegions || region_d.empty()) return;  // a region itself (region_d: round start)
  const auto nearest = std::min_element(region_d.begin(), region_d.end()) - region_d.begin();
  cluster.offset = region_d[nearest];
  cluster.region = static_cast<std::int32_t>(nearest);
  region_members_[nearest].push_back(index);
  reach_[nearest] = std::max(reach_[nearest], cluster.offset + 2 * std::sqrt(cluster.radius2));
}

std::vector<std::int64_t> Selection::round(double epsilon, std::int64_t limit) {
  // 1. The round's centres: the widest clusters' farthest points, in order, each kept when it is
  // still far enough from the ones kept before it.
  std::vector<std::int64_t> centres;
  std::vector<std::int32_t> popped;
  const float widest = settle(epsilon);
  const auto floor2 = static_cast<float>(widest * (1 - epsilon) * (1 - epsilon));
  while (static_cast<std::int64_t>(centres.size()) < limit) {
    const std::int32_t c = candidates_.pop(clusters_);
    if (c < 0) break;
    popped.push_back(c);
    const Cluster& cluster = clusters_[c];
    if (cluster.farthest < 0 || cluster.radius2 < floor2) break;  // no point outside a centre
    const std::int64_t x = cluster.farthest;
    bool far = true;
    for (const auto y : centres) {
      if (points_.squared_distance(x, y) < floor2) {
        far = false;
        break;
      }
    }
    if (far) centres.push_back(x);
  }
  if (centres.empty()) {
    for (const auto c : popped) candidates_.push(clusters_[c], c);
    return centres;
  }

  // 2. The points the new centres take: by the bounds, cluster by cluster, or, where the bounds
  // would leave most of them, every point by matrix products.
  const auto n = static_cast<std::int64_t>(centres.size());
  std::vector<std::vector<std::pair<std::int32_t, float>>> touched(n);
  std::vector<std::vector<float>> region_d(n);
  std::vector<std::uint8_t> asked(n, 0);
  std::vector<std::int32_t> moved;
  const bool dense = dense_round(centres, touched, region_d, asked);
  const bool share = threads_ > 1 && n > 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_) if (share)
  for (std::int64_t j = 0; j < n; ++j) {
    if (asked[j]) continue;
    if (dense) {
      region_distances(centres[j], region_d[j]);
    } else {
      touched_by(centres[j], touched[j], region_d[j]);
    }
  }
  if (dense) {
    ++dense_rounds_;
    measure_dense(centres, static_cast<float>(floor2 * freeze_below_ * freeze_below_), moved);
  } else {
    measure_bounded(centres, touched, moved);
  }

  // 3. Each point goes to its nearest centre; the clusters it leaves get a new radius.
  std::sort(moved.begin(), moved.end());
  std::vector<std::int32_t> changed;
  changed.reserve(moved.size());
  for (const auto i : moved) changed.push_back(owner_[i]);
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  for (const auto i : moved) leaving_[i] = 1;
  const auto changed_count = static_cast<std::int64_t>(changed.size());
  const bool share_changed = threads_ > 1 && changed_count > 16;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads_) if (share_changed)
  for (std::int64_t k = 0; k < changed_count; ++k) {
    Cluster& cluster = clusters_[changed[k]];
    std::erase_if(cluster.members, [&](std::int32_t i) { return leaving_[i] != 0; });
    // min_d2 of the members that stay is unchanged: only the farthest may have left.
    refresh_radius(cluster, min_d2_.data());
  }
  const auto first_new = static_cast<std::int32_t>(clusters_.size());
  for (std::int64_t j = 0; j < n; ++j) clusters_.push_back(Cluster{.center = centres[j]});
  for (const auto i : moved) {
    min_d2_[i] = best_d2_[i];
    owner_[i] = first_new + best_centre_[i];
    clusters_[first_new + best_centre_[i]].members.push_back(i);
    leaving_[i] = 0;
    best_d2_[i] = std::numeric_limits<float>::infinity();
    best_centre_[i] = -1;
  }
  for (std::int64_t j = 0; j < n; ++j) {
    min_d2_[centres[j]] = 0;
    const auto index = static_cast<std::int32_t>(first_new + j);
    refresh_radius(clusters_[index], min_d2_.data());
    file_under_region(index, region_d[j]);
  }
  // The region bound uses each cluster's radius when it was filed; radii only shrink after that
  // (but in take_in() and thaw(), which widen the reach with them).
  // One current heap entry per cluster: again for those that changed, and for those popped
  // (their entry is gone) unless they changed.
  for (const auto c : changed) candidates_.push(clusters_[c], c);
  for (const auto c : popped) {
    if (!std::binary_search(changed.begin(), changed.end(), c)) candidates_.push(clusters_[c], c);
  }
  for (std::int64_t j = 0; j < n; ++j) {
    const auto index = static_cast<std::int32_t>(first_new + j);
    candidates_.push(clusters_[index], index);
  }
  return centres;
}

}  // namespace

namespace {

// Rounds until `target` centres, or until every point left is a centre or a duplicate of one.
void select_until(Selection& selection, std::int64_t target, const KCenterOptions& options,
                  std::vector<std::int64_t>& indices) {
  const bool fast = options.method == CoresetMethod::kFast;
  while (static_cast<std::int64_t>(indices.size()) < target) {
    const std::int64_t left = target - static_cast<std::int64_t>(indices.size());
    const auto added =
        selection.round(fast ? kFastEpsilon : 0.0, fast ? std::min(left, kFastBatch) : 1);
    if (added.empty()) break;
    indices.insert(indices.end(), added.begin(), added.end());
    if (options.on_progress) options.on_progress(static_cast<std::int64_t>(indices.size()));
  }
}

// Only duplicates are left: any of them will do (in index order, none of the `held_out`).
void fill_with_duplicates(std::int64_t count, std::int64_t target,
                          const std::vector<bool>* held_out, std::vector<std::int64_t>& indices) {
  std::vector<bool> chosen(count, false);
  for (const auto i : indices) chosen[i] = true;
  for (std::int64_t i = 0; i < count && static_cast<std::int64_t>(indices.size()) < target; ++i) {
    if (!chosen[i] && (held_out == nullptr || !(*held_out)[i])) indices.push_back(i);
  }
}

}  // namespace

KCenterResult k_center(const at::Tensor& input, const KCenterOptions& options) {
  validate(input, options);
  const GridPoints points(input);
  const bool fast = options.method == CoresetMethod::kFast;
  KCenterResult result;
  const std::int64_t first = random_start(input.size(0), options.seed);
  Selection selection(points, first, at::get_num_threads(), fast ? options.dense_above : 2.0,
                      options.freeze_below);
  result.indices.push_back(first);
  if (options.on_progress) options.on_progress(1);
  select_until(selection, options.centers, options, result.indices);
  result.covering_radius =
      std::sqrt(static_cast<double>(selection.covering_radius2())) * points.step();
  result.dense_rounds = selection.dense_rounds();
  result.products = selection.products();
  fill_with_duplicates(input.size(0), options.centers, nullptr, result.indices);
  return result;
}

ContinuedKCenterResult k_center_continued(const at::Tensor& input,
                                          const std::vector<bool>& held_out,
                                          std::int64_t first_centers,
                                          const KCenterOptions& options) {
  validate(input, options);
  const auto count = input.size(0);
  std::vector<std::int64_t> kept;
  for (std::int64_t i = 0; i < count; ++i) {
    if (static_cast<std::int64_t>(held_out.size()) != count || !held_out[i]) kept.push_back(i);
  }
  if (static_cast<std::int64_t>(held_out.size()) != count || kept.empty()) {
    throw Error(
        "coreset selection: the held-out flags must be one per point and leave some out "
        "of it");
  }
  const auto kept_count = static_cast<std::int64_t>(kept.size());
  if (first_centers < 1 || first_centers > kept_count || first_centers > options.centers) {
    throw Error("coreset selection: cannot pick " + std::to_string(first_centers) +
                " centres from " + std::to_string(kept_count) + " points first");
  }
  const GridPoints points(input);
  const bool fast = options.method == CoresetMethod::kFast;
  ContinuedKCenterResult result;
  const auto clock = std::chrono::steady_clock::now();
  // The start k_center() would take among the kept points alone.
  const std::int64_t first = kept[random_start(kept_count, options.seed)];
  Selection selection(points, first, at::get_num_threads(), fast ? options.dense_above : 2.0,
                      options.freeze_below, &held_out);
  std::vector<std::int64_t>& indices = result.selection.indices;
  indices.push_back(first);
  if (options.on_progress) options.on_progress(1);
  select_until(selection, first_centers, options, indices);
  result.first_covering_radius =
      std::sqrt(static_cast<double>(selection.covering_radius2())) * points.step();
  fill_with_duplicates(count, first_centers, &held_out, indices);
  result.first_centers = static_cast<std::int64_t>(indices.size());
  result.first_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - clock).count();
  // Duplicates filled in above are centres without clusters; take_in() needs one per centre.
  const std::vector<std::int64_t> with_clusters(indices.begin(),
                                                indices.begin() + selection.clusters());
  selection.take_in(with_clusters);
  select_until(selection, options.centers, options, indices);
  result.selection.covering_radius =
      std::sqrt(static_cast<double>(selection.covering_radius2())) * points.step();
  result.selection.dense_rounds = selection.dense_rounds();
  result.selection.products = selection.products();
  fill_with_duplicates(count, options.centers, nullptr, indices);
  return result;
}

at::Tensor k_center_grid(const at::Tensor& points) {
  if (points.dim() != 2 || points.size(0) == 0) {
    throw Error("coreset selection needs a non-empty N x d matrix of points");
  }
  const GridPoints grid(points);
  return grid.coordinates().narrow(1, 0, points.size(1));
}

KCenterResult greedy_k_center_naive(const at::Tensor& input, const KCenterOptions& options) {
  validate(input, options);
  // The same grid points as k_center() works on (their distances exact in double).
  const at::Tensor points = k_center_grid(input);
  KCenterResult result;
  std::int64_t next = random_start(points.size(0), options.seed);
  at::Tensor min_d2 =
      at::full({points.size(0)}, std::numeric_limits<double>::infinity(), at::kDouble);
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
