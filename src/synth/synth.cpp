#include <algorithm>
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

Rendered render_mats(const SurfaceSpec& spec) {
  const auto& defects = defect_names(spec.category);  // validates the category
  const bool good = spec.defect == kGoodLabel;
  if (!good && std::find(defects.begin(), defects.end(), spec.defect) == defects.end()) {
    throw Error("unknown defect '" + spec.defect + "' for synthetic " + spec.category);
  }
  if (spec.size < 64) throw Error("synthetic images need --size 64 or more");
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
    if (!good) defect = paint_defect(spec.category, spec.defect, rng, clean);
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
                       .seed = options.seed},
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
  return {{"generator", "patchvec synth"},
          {"version", 1},
          {"categories", options.categories},
          {"train", options.train},
          {"test_good", options.test_good},
          {"test_bad", options.test_bad},
          {"size", options.size},
          {"seed", options.seed}};
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
