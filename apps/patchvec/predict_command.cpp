// patchvec predict: score images with a trained model.
#include <cstdio>

#include <patchvec/error.h>
#include <patchvec/model.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct PredictArgs {
  std::filesystem::path model;
  std::vector<std::string> images;
  bool json = false;
  std::filesystem::path heatmaps;
  ModelLoadOptions load;
};

void run_predict(const PredictArgs& args) {
  const Model model = Model::load(args.model, args.load);
  const auto images = expand_images(args.images);
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
    const std::string verdict = !thresholds ? "unknown" : p.anomalous ? "anomalous" : "normal";
    std::string heatmap;
    if (!args.heatmaps.empty())
      heatmap = write_heatmap(args.heatmaps, images[i], model, p).string();
    if (args.json) {
      results.push_back({{"image", images[i].string()},
                         {"score", p.score},
                         {"normalized", number_or_null(p.normalized)},
                         {"verdict", verdict},
                         {"heatmap", heatmap.empty() ? nlohmann::ordered_json()
                                                     : nlohmann::ordered_json(heatmap)}});
    } else {
      std::printf("%-*s %9.4f %10.3f  %s%s\n", static_cast<int>(width), images[i].string().c_str(),
                  p.score, p.normalized, verdict.c_str(),
                  heatmap.empty() ? "" : ("  " + heatmap).c_str());
    }
  }
  if (args.json) {
    write_json("-", {{"model", args.model.string()},
                     {"category", model.info().category},
                     {"image_threshold", thresholds ? nlohmann::ordered_json(thresholds->image)
                                                    : nlohmann::ordered_json()},
                     {"predictions", results},
                     {"unreadable", failed},
                     {"timings", to_json(timings)}});
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
  add_model_load_options(*cmd, args->load);
  cmd->callback([args] { run_predict(*args); });
}

}  // namespace pv::cli
