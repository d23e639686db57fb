// patchvec import-anomalib: an anomalib PatchCore checkpoint becomes a .pvm model.
#include <cstdio>

#include <patchvec/anomalib.h>
#include <patchvec/error.h>
#include <patchvec/log.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct ImportArgs {
  std::filesystem::path checkpoint;
  std::filesystem::path out;
  AnomalibImportOptions options;
  bool json = false;
};

void run_import(ImportArgs& args) {
  if (args.out.empty()) args.out = args.options.category + ".pvm";
  // A folder (existing, or named without the .pvm extension) gets <category>.pvm; it is made
  // only once there is a model to write.
  const bool folder = std::filesystem::is_directory(args.out) || args.out.extension() != ".pvm";
  const std::filesystem::path dir = folder ? args.out : std::filesystem::path();
  if (folder) args.out /= args.options.category + ".pvm";
  const AnomalibImport imported = import_anomalib(args.checkpoint, args.options);
  const bool made = folder && std::filesystem::create_directories(dir);
  try {
    imported.model.save(args.out);
  } catch (const Error&) {
    std::error_code ignored;
    if (made) std::filesystem::remove(dir, ignored);  // empty: save() writes all or nothing
    throw;
  }
  const ModelInfo& info = imported.model.info();
  if (args.json) {
    const nlohmann::ordered_json thresholds =
        info.thresholds ? json::thresholds(*info.thresholds) : nlohmann::ordered_json();
    write_json("-", {{"model", args.out.string()},
                     {"category", info.category},
                     {"layout", imported.layout},
                     {"backbone", info.backbone.backbone},
                     {"weights_prefix", imported.weights_prefix},
                     {"image_size", info.options.embedder.image_size},
                     {"crop_size", info.options.embedder.crop_size},
                     {"bank_size", info.bank_size},
                     {"patch_dim", info.grid.dim},
                     {"num_neighbors", info.options.num_neighbors},
                     {"thresholds", thresholds},
                     {"notes", imported.notes}});
    return;
  }
  std::printf("%s: %s PatchCore model, backbone %s (tensors under '%s')\n", args.checkpoint.c_str(),
              imported.layout.c_str(), info.backbone.backbone.c_str(),
              imported.weights_prefix.c_str());
  std::printf("  memory bank %lld x %lld, %d neighbours for the image score\n",
              static_cast<long long>(info.bank_size), static_cast<long long>(info.grid.dim),
              info.options.num_neighbors);
  std::printf("  images resized to %d%s\n", info.options.embedder.image_size,
              info.options.embedder.crop_size > 0
                  ? (", centre crop " + std::to_string(info.options.embedder.crop_size)).c_str()
                  : ", no crop");
  if (info.thresholds) {
    std::printf("  thresholds: image %.6g, pixel %.6g (%s)\n", info.thresholds->image,
                info.thresholds->pixel, info.thresholds->source.c_str());
  }
  for (const auto& note : imported.notes) std::printf("  note: %s\n", note.c_str());
  std::printf("wrote %s (the backbone's weights inside: no other file needed)\n", args.out.c_str());
}

}  // namespace

void add_import_command(CLI::App& app) {
  auto args = std::make_shared<ImportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "import-anomalib", "Turn an anomalib PatchCore checkpoint (.ckpt, 1.x or 2.x) into a model");
  cmd->footer(R"(
The checkpoint is read without Python and without running its pickle: the backbone's tensors, the
memory bank, the thresholds and min-max statistics, and the Resize/CenterCrop it recorded. Scores
are anomalib's (nearest-neighbour re-weighting, nearest upsampling, Gaussian blur sigma 4). The
model file carries the backbone's weights.
Examples:
  patchvec import-anomalib results/Patchcore/MVTec/bottle/latest/weights/lightning/model.ckpt \
      --category bottle --out models/
  patchvec predict --model models/bottle.pvm new_images/ --heatmap heatmaps)");
  cmd->add_option("checkpoint", args->checkpoint, "anomalib's model.ckpt")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--category", args->options.category, "The model's category (its name)")
      ->required();
  cmd->add_option(
      "--out", args->out,
      "The .pvm file to write, or a folder for <category>.pvm (created if needed; default: "
      "<category>.pvm here)");
  cmd->add_option("--image-size", args->options.image_size,
                  "Resize to this square size (default: what the checkpoint recorded)");
  cmd->add_option("--crop-size", args->options.crop_size,
                  "Centre crop after resizing, 0 = none (default: what the checkpoint recorded)");
  cmd->add_option("--threads", args->options.threads, "Compute threads (0 = one per core)");
  cmd->add_flag("--json", args->json, "Print a JSON summary on stdout");
  cmd->callback([args] { run_import(*args); });
}

}  // namespace pv::cli
