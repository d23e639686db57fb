#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/synth.h>

#include "image/codecs.h"
#include "image/render.h"
#include "synth/defects.h"
#include "synth/rng.h"
#include "synth/surfaces.h"
#include "util/progress.h"

namespace pv::synth {
namespace {

// Converted exactly as load_image() converts the PNG, so the two agree bit for bit.
Image to_image(const cv::Mat& bgr8) {
  Image image;
  image.width = bgr8.cols;
  image.height = bgr8.rows;
  image.pixels.resize(bgr8.total() * 3);
  float* out = image.pixels.data();
  for (int y = 0; y < bgr8.rows; ++y) {
    const auto* row = bgr8.ptr<std::uint8_t>(y);
    for (int x = 0; x < bgr8.cols; ++x, out += 3) {
      for (int c = 0; c < 3; ++c) out[c] = codecs::unit_from_u8(row[3 * x + 2 - c]);
    }
  }
  return image;
}

struct Rendered {
  cv::Mat image;  // 8-bit BGR
  cv::Mat clean;  // 8-bit BGR
  cv::Mat mask;   // 8-bit, empty for good
};

// A defect painted as on an image of size * defect_scale pixels, in a window of that side at a
// random place of `clean` (SurfaceSpec::defect_scale).
Defect small_defect(const SurfaceSpec& spec, Rng& rng, const cv::Mat& clean) {
  if (spec.defect_scale == 1.0) return paint_defect(spec.category, spec.defect, rng, clean);
  const int side = std::max(64, static_cast<int>(std::lround(spec.size * spec.defect_scale)));
  if (side >= spec.size) return paint_defect(spec.category, spec.defect, rng, clean);
  const cv::Rect window(rng.integer(0, spec.size - side), rng.integer(0, spec.size - side), side,
                        side);
  const Defect painted = paint_defect(spec.category, spec.defect, rng, clean(window).clone());
  Defect out{.image = clean.clone(), .mask = cv::Mat::zeros(clean.size(), CV_8U)};
  painted.image.copyTo(out.image(window));
  painted.mask.copyTo(out.mask(window));
  return out;
}

Rendered render_mats(const SurfaceSpec& spec) {
  const auto& defects = defect_names(spec.category);  // validates the category
  const bool good = spec.defect == kGoodLabel;
  if (!good && std::find(defects.begin(), defects.end(), spec.defect) == defects.end()) {
    throw Error("unknown defect '" + spec.defect + "' for synthetic " + spec.category);
  }
  if (spec.size < 64) throw Error("synthetic images need --size 64 or more");
  if (!(spec.defect_scale > 0 && spec.defect_scale <= 1)) {
    throw Error("--defect-scale must be in (0, 1], got " + std::to_string(spec.defect_scale));
  }
  if (spec.defect_scale != 1.0 && spec.category == "grid") {
    throw Error("--defect-scale applies to tile and leather (grid's defects span its wires)");
  }
  Rng rng(mix_seed(spec.seed, spec.category + "/" + spec.stream + "/" + spec.defect + "/" +
                                  std::to_string(spec.index)));
  cv::Mat clean;
  Defect defect;
  if (spec.category == "grid") {
    const GridSurface surface = grid_surface(rng, spec.size);
    clean = render_grid(surface);
    if (!good) defect = grid_defect(spec.defect, rng, surface, clean);
  } else {
    clean = spec.category == "tile" ? render_tile(rng, spec.size) : render_leather(rng, spec.size);
    if (!good) defect = small_defect(spec, rng, clean);
  }
  Rendered out;
  out.clean = render::to_bgr8(clean);
  out.image = good ? out.clean : render::to_bgr8(defect.image);
  out.mask = defect.mask;
  return out;
}

struct Job {
  SurfaceSpec spec;
  std::filesystem::path image;
  std::filesystem::path mask;  // empty for good images
};

std::string numbered(int index) {
  char name[16];
  std::snprintf(name, sizeof name, "%03d", index);
  return name;
}

std::vector<Job> plan(const std::filesystem::path& root, const DatasetOptions& options) {
  std::vector<Job> jobs;
  auto add = [&](const std::string& category, const std::string& defect, const std::string& split,
                 int count) {
    const std::filesystem::path folder = root / category / split / defect;
    for (int i = 0; i < count; ++i) {
      Job job{.spec = {.category = category,
                       .defect = defect,
                       .stream = split,
                       .index = i,
                       .size = options.size,
                       .seed = options.seed,
                       .defect_scale = options.defect_scale},
              .image = folder / (numbered(i) + ".png")};
      if (defect != kGoodLabel) {
        job.mask = root / category / "ground_truth" / defect / (numbered(i) + "_mask.png");
      }
      jobs.push_back(std::move(job));
    }
  };
  for (const std::string& category : options.categories) {
    defect_names(category);  // fail before writing anything
    add(category, kGoodLabel, "train", options.train);
    add(category, kGoodLabel, "test", options.test_good);
    for (const std::string& defect : defect_names(category)) {
      add(category, defect, "test", options.test_bad);
    }
  }
  return jobs;
}

nlohmann::ordered_json to_json(const DatasetOptions& options) {
  nlohmann::ordered_json j = {{"generator", "patchvec synth"},
                              {"version", 1},
                              {"categories", options.categories},
                              {"train", options.train},
                              {"test_good", options.test_good},
                              {"test_bad", options.test_bad},
                              {"size", options.size},
                              {"seed", options.seed}};
  // Written only when set, so that datasets from before it still match their options.
  if (options.defect_scale != 1.0) j["defect_scale"] = options.defect_scale;
  return j;
}

}  // namespace

std::vector<std::string> category_names() {
  return {"grid", "leather", "tile"};
}

std::vector<std::string> defect_types(std::string_view category) {
  return defect_names(category);
}

Surface render(const SurfaceSpec& spec) {
  const Rendered r = render_mats(spec);
  Surface s;
  s.image = to_image(r.image);
  s.clean = to_image(r.clean);
  if (!r.mask.empty()) s.mask.assign(r.mask.datastart, r.mask.dataend);
  return s;
}

std::string describe(const DatasetOptions& options) {
  return to_json(options).dump(2) + "\n";
}

std::int64_t write_dataset(const std::filesystem::path& root, const DatasetOptions& options) {
  if (options.train < 1) throw Error("synthetic datasets need at least one training image");
  if (options.test_good < 0 || options.test_bad < 0) throw Error("image counts cannot be negative");
  const std::vector<Job> jobs = plan(root, options);
  std::error_code error;
  std::filesystem::remove(root / "synth.json", error);  // incomplete until rewritten below
  for (const Job& job : jobs) {
    std::filesystem::create_directories(job.image.parent_path());
    if (!job.mask.empty()) std::filesystem::create_directories(job.mask.parent_path());
  }
  ProgressBar progress("synthesise", jobs.size());
  std::mutex lock;
  std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic)
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    try {
      const Rendered r = render_mats(jobs[i].spec);
      render::write_png(jobs[i].image, r.image);
      if (!jobs[i].mask.empty()) render::write_png(jobs[i].mask, r.mask);
      const std::lock_guard guard(lock);
      progress.advance();
    } catch (...) {
      const std::lock_guard guard(lock);
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  progress.finish();
  AtomicFile manifest(root / "synth.json");
  manifest.write(describe(options));
  manifest.commit();
  return static_cast<std::int64_t>(jobs.size());
}

bool dataset_matches(const std::filesystem::path& root, const DatasetOptions& options) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(root / "synth.json", error)) return false;
  try {
    const std::vector<std::byte> bytes = read_file(root / "synth.json");
    const std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return nlohmann::ordered_json::parse(text) == to_json(options);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace pv::synth
