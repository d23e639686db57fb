// patchvec predict: score images with a trained model.
#include <cstdio>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/model.h>
#include <patchvec/npy.h>
#include <patchvec/pictures.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct PredictArgs {
  std::filesystem::path model;
  std::vector<std::filesystem::path> images;
  bool json = false;
  std::filesystem::path heatmaps;
  std::filesystem::path maps;
  ModelLoadOptions load;
};

// The map as the model sees the image (the crop, or a tiled model's scaled image), and on the
// whole original image (NaN outside the crop), as .npy.
std::pair<std::string, std::string> write_maps(const std::filesystem::path& folder,
                                               const std::filesystem::path& image,
                                               const Model& model, const Prediction& p) {
  std::filesystem::create_directories(folder);
  const auto crop = output_path(folder, image, "_map.npy");
  write_npy(crop, std::vector<std::int64_t>{p.map.height, p.map.width}, p.map.values);
  const ImageHeader header = read_image_header(image);
  const AnomalyMap original =
      map_on_original(p.map, model.info().options.embedder.image_size,
                      model.info().options.embedder.crop_size, header.width, header.height);
  const auto full = output_path(folder, image, "_map_original.npy");
  write_npy(full, std::vector<std::int64_t>{original.height, original.width}, original.values);
  return {crop.string(), full.string()};
}

void run_predict(const PredictArgs& args) {
  const Model model = Model::load(args.model, args.load);
  if (const std::string line = precision_line(model); !line.empty()) {
    std::fprintf(args.json ? stderr : stdout, "%s\n", line.c_str());
  }
  if (const std::string line = search_line(model); !line.empty()) {
    std::fprintf(args.json ? stderr : stdout, "%s\n", line.c_str());
  }
  const auto images = expand_images(args.images);
  if (!args.heatmaps.empty()) check_distinct_outputs(images, args.heatmaps, "--heatmap");
  if (!args.maps.empty()) check_distinct_outputs(images, args.maps, "--maps");
  PredictTimings timings;
  std::vector<std::string> unreadable;
  const std::vector<Prediction> predictions =
      model.predict(images, "predict", &timings, &unreadable);
  const auto& thresholds = model.info().thresholds;
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  std::size_t width = 5;
  for (const auto& image : images) width = std::max(width, image.string().size());
  if (!args.json) {
    std::printf("%-*s %9s %10s  %s\n", static_cast<int>(width), "image", "score", "normalized",
                "verdict");
  }
  std::size_t failed = 0;
  for (std::size_t i = 0; i < images.size(); ++i) {
    const Prediction& p = predictions[i];
    if (!unreadable[i].empty()) {  // reported, and the others still scored
      ++failed;
      std::fprintf(stderr, "patchvec: error: %s\n", unreadable[i].c_str());
      if (args.json) {
        results.push_back({{"image", images[i].string()}, {"error", unreadable[i]}});
      } else {
        std::printf("%-*s %9s %10s  %s\n", static_cast<int>(width), images[i].string().c_str(), "-",
                    "-", "unreadable");
      }
      continue;
    }
    const std::string verdict = verdict_name(p.verdict);
    std::string heatmap;
    if (!args.heatmaps.empty())
      heatmap = write_heatmap(args.heatmaps, images[i], model, p).string();
    std::pair<std::string, std::string> maps;
    if (!args.maps.empty()) maps = write_maps(args.maps, images[i], model, p);
    if (args.json) {
      results.push_back({{"image", images[i].string()},
                         {"score", p.score},
                         {"normalized", json::number_or_null(p.normalized)},
                         {"verdict", verdict},
                         {"heatmap", heatmap.empty() ? nlohmann::ordered_json()
                                                     : nlohmann::ordered_json(heatmap)}});
      if (!args.maps.empty()) {
        results.back()["map"] = maps.first;
        results.back()["map_original"] = maps.second;
      }
    } else {
      std::printf("%-*s %9.4f %10.3f  %s%s\n", static_cast<int>(width), images[i].string().c_str(),
                  p.score, p.normalized, verdict.c_str(),
                  heatmap.empty() ? "" : ("  " + heatmap).c_str());
    }
  }
  if (args.json) {
    write_json("-", {{"model", args.model.string()},
                     {"category", model.info().category},
                     {"precision", precision_name(model.precision())},
                     {"search", search_method_name(model.search_method())},
                     {"image_threshold", thresholds ? nlohmann::ordered_json(thresholds->image)
                                                    : nlohmann::ordered_json()},
                     {"threshold_method",
                      thresholds ? nlohmann::ordered_json(threshold_method_name(thresholds->method))
                                 : nlohmann::ordered_json()},
                     {"threshold_source", thresholds ? nlohmann::ordered_json(thresholds->source)
                                                     : nlohmann::ordered_json()},
                     {"predictions", results},
                     {"unreadable", failed},
                     {"timings", json::timings(timings)}});
  }
  if (failed > 0) {
    throw Error(std::to_string(failed) + " of " + std::to_string(images.size()) +
                " images could not be read (named above); the others were scored");
  }
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand(
      "predict",
      "Score images with a trained model: raw score, normalised score (0.5 = threshold), "
      "verdict, and optionally heatmap pictures");
  cmd->footer("");
  cmd->add_option("--model", args->model, "Model file written by 'patchvec train'")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("images", args->images, "Images, or folders of images")->required();
  cmd->add_flag("--json", args->json, "Print JSON on stdout");
  cmd->add_option("--heatmap", args->heatmaps, "Folder for <image>_heatmap.png pictures");
  cmd->add_option("--maps", args->maps,
                  "Folder for the raw anomaly maps as float32 .npy: <image>_map.npy as the model "
                  "sees the image (the crop, or with tiles the whole scaled image), "
                  "<image>_map_original.npy on the whole image (NaN where the crop cut it)");
  add_model_load_options(*cmd, args->load);
  add_tiling_override_options(*cmd, args->load.tiling);
  cmd->callback([args] { run_predict(*args); });
}

}  // namespace pv::cli
