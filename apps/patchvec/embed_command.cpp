// patchvec embed: the patch embeddings of a category's training images, as a .npy file.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include <patchvec/dataset.h>
#include <patchvec/embedder.h>
#include <patchvec/npy.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct EmbedArgs {
  std::filesystem::path data;
  std::string category;
  std::filesystem::path out;
  bool json = false;
  EmbedderOptions embedder;
};

std::vector<std::filesystem::path> training_images(const EmbedArgs& args,
                                                   std::vector<std::string>& names) {
  std::vector<std::filesystem::path> paths;
  if (args.category.empty()) {
    paths = list_images(args.data);
    for (const auto& path : paths) names.push_back(path.filename().string());
  } else {
    const Category category = read_category(args.data, args.category, /*with_test=*/false);
    for (const auto& sample : category.train) {
      paths.push_back(sample.image);
      names.push_back(sample.relative_path);
    }
  }
  return paths;
}

void run_embed(const EmbedArgs& args) {
  const auto start = std::chrono::steady_clock::now();
  const auto seconds_since = [](auto from) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count();
  };
  std::vector<std::string> names;
  const auto paths = training_images(args, names);

  Embedder embedder(args.embedder);
  double calibrate_seconds = 0;
  if (!embedder.ready()) {
    const auto begin = std::chrono::steady_clock::now();
    embedder.calibrate(paths);
    calibrate_seconds = seconds_since(begin);
  }
  const auto embed_start = std::chrono::steady_clock::now();
  const PatchEmbeddings embeddings = embedder.embed(paths);
  const double embed_seconds = seconds_since(embed_start);

  const std::vector<std::int64_t> shape = {embeddings.count, embeddings.grid.height,
                                           embeddings.grid.width, embeddings.grid.dim};
  write_npy(args.out, shape, embeddings.values);
  const double total_seconds = seconds_since(start);

  if (args.json) {
    const nlohmann::ordered_json summary = {{"category", args.category},
                                            {"backbone", args.embedder.backbone},
                                            {"pretrained", embedder.pretrained()},
                                            {"shape", shape},
                                            {"out", args.out.string()},
                                            {"images", names},
                                            {"timings",
                                             {{"batchnorm_s", calibrate_seconds},
                                              {"embed_s", embed_seconds},
                                              {"total_s", total_seconds}}}};
    std::cout << summary.dump(2) << "\n";
    return;
  }
  const std::string what = embeddings.layouts.empty()
                               ? std::to_string(embeddings.count) + " images"
                               : std::to_string(embeddings.count) + " tiles of " +
                                     std::to_string(paths.size()) + " images";
  std::printf("embedded %s with %s%s: %lld x %lld x %lld x %lld float32 -> %s (%.0f MB)\n",
              what.c_str(), args.embedder.backbone.c_str(),
              embedder.pretrained() ? "" : " (random init, BatchNorm calibrated)",
              static_cast<long long>(shape[0]), static_cast<long long>(shape[1]),
              static_cast<long long>(shape[2]), static_cast<long long>(shape[3]), args.out.c_str(),
              embeddings.values.size() * sizeof(float) / 1e6);
  std::printf("time: %.1f s, %.0f ms per %s", total_seconds,
              1000.0 * embed_seconds / std::max<std::int64_t>(embeddings.count, 1),
              embeddings.layouts.empty() ? "image" : "tile");
  if (calibrate_seconds > 0) std::printf(", %.1f s BatchNorm calibration", calibrate_seconds);
  std::printf("\n");
}

}  // namespace

void add_embed_command(CLI::App& app) {
  auto args = std::make_shared<EmbedArgs>();
  CLI::App* cmd = app.add_subcommand(
      "embed",
      "Write the PatchCore patch embeddings of the training images as an N x H x W x C float32 "
      ".npy file (with --tile, N counts tiles: each image's in row-major order)");
  cmd->footer("");
  cmd->add_option("--data", args->data,
                  "Dataset root in MVTec AD layout (<root>/<category>/train/good), or a plain "
                  "folder of images when --category is not given")
      ->required();
  cmd->add_option("--category", args->category, "Category folder under --data (e.g. tile)");
  cmd->add_option("--out", args->out, "Output .npy file (written atomically)")->required();
  add_embedder_options(*cmd, args->embedder);
  add_tiling_options(*cmd, args->embedder.tiling);
  cmd->add_option("--seed", args->embedder.seed, "Seed of the random initialisation")
      ->capture_default_str();
  cmd->add_flag("--json", args->json,
                "Print a JSON summary (shape, image order, timings) on stdout");
  cmd->callback([args] { run_embed(*args); });
}

}  // namespace pv::cli
