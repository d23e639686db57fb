// patchvec synth: a procedural flat-surface dataset in the MVTec AD layout.
#include <cstdio>

#include <patchvec/log.h>
#include <patchvec/synth.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {

void add_synth_command(CLI::App& app) {
  auto options = std::make_shared<synth::DatasetOptions>();
  auto root = std::make_shared<std::filesystem::path>();
  auto categories = std::make_shared<std::vector<std::string>>(options->categories);
  CLI::App* command = app.add_subcommand(
      "synth",
      "Write a synthetic flat-surface dataset (tile, leather, grid) in the MVTec AD layout");
  command->footer(R"(
Each category gets train/good, test/good, test/<defect> and ground_truth/<defect>/*_mask.png,
exactly like MVTec AD, so every other command reads it as it reads the real dataset.
  tile     irregular stone tiles with grout      crack, glue_strip, gray_stroke, oil, rough
  leather  fine grain with pores, colour drift   color, cut, fold, glue, poke
  grid     a woven metal mesh                    bent, broken, glue, metal_contamination, thread
Normal images vary (layout, grain, lighting, shifts, rotations); defects vary in size, place and
contrast, some are subtle. An image depends only on its category, defect, split, number, size and
seed: asking for more images keeps the existing ones. <out>/synth.json records the options.

Example:
  patchvec synth --out data --train 200 --test-bad 10 --seed 7
  patchvec train --data data --category tile,leather,grid --out models)");
  command->add_option("--out", *root, "Dataset root to write")->required();
  command->add_option("--categories", *categories, "Comma-separated: tile, leather, grid")
      ->delimiter(',')
      ->capture_default_str();
  command->add_option("--train", options->train, "Defect-free training images per category")
      ->capture_default_str();
  command->add_option("--test-good", options->test_good, "Defect-free test images per category")
      ->capture_default_str();
  command->add_option("--test-bad", options->test_bad, "Test images per defect type")
      ->capture_default_str();
  command->add_option("--size", options->size, "Image side, pixels")->capture_default_str();
  command
      ->add_option("--defect-scale", options->defect_scale,
                   "Draw defects as on an image this fraction of --size (tile, leather): with "
                   "--size 1024 --defect-scale 0.125, defects a few pixels across, for tiling")
      ->capture_default_str();
  command->add_option("--seed", options->seed, "Random seed")->capture_default_str();
  command->callback([=] {
    options->categories = *categories;
    const std::int64_t written = synth::write_dataset(*root, *options);
    log::info("wrote " + std::to_string(written) + " images to " + root->string());
  });
}

}  // namespace pv::cli
