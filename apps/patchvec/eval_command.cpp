// patchvec eval: AUROC, PRO, thresholds, per-image scores, overlays and ROC curves.
#include <cstdio>

#include <patchvec/dataset.h>
#include <patchvec/evaluation.h>
#include <patchvec/log.h>
#include <patchvec/model.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct EvalArgs {
  std::vector<std::filesystem::path> models;
  std::filesystem::path data;
  std::string json;
  std::filesystem::path overlays;
  ModelLoadOptions load;
};

void run_eval(const EvalArgs& args) {
  std::vector<EvaluationReport> reports;
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const auto& path : args.models) {
    const Model model = Model::load(path, args.load);
    if (const std::string line = search_line(model); !line.empty()) {
      std::fprintf(human_output(args.json), "%s\n", line.c_str());
    }
    const std::string& name = model.info().category;
    const Category category = read_category(args.data, name);
    EvaluateOptions options;
    if (!args.overlays.empty()) {
      options.overlays_dir = args.overlays / name;
      options.roc_png = args.overlays / (name + "_roc.png");
    }
    const EvaluationReport report = evaluate(model, category, options);
    std::fprintf(
        human_output(args.json),
        "%s: image AUROC %.3f, pixel AUROC %.3f, PRO %.3f, image F1 %.3f (%zu images, %.0f ms "
        "each)\n",
        name.c_str(), report.image_auroc, report.pixel_auroc, report.pro, report.image_f1,
        report.images.size(),
        1000 * report.seconds / std::max<std::size_t>(report.images.size(), 1));
    if (!args.overlays.empty()) {
      log::info("  overlays in " + options.overlays_dir.string() + ", ROC curve " +
                options.roc_png.string());
    }
    all.push_back(json::evaluation(report));
    reports.push_back(report);
  }
  print_table(human_output(args.json), reports);
  if (!args.json.empty()) write_json(args.json, all.size() == 1 ? all[0] : all);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Evaluate models on their category's labelled test split: image and pixel AUROC, "
      "PRO, F1-optimal thresholds, per-image scores, overlay pictures and ROC curves");
  cmd->footer("");
  cmd->add_option("--model", args->models, "Model file(s) written by 'patchvec train'")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--data", args->data, "Dataset root in MVTec AD layout")->required();
  cmd->add_option("--json", args->json,
                  "Write the results as JSON to this file ('-' = stdout); one object per model, "
                  "an array for several");
  cmd->add_option(
      "--overlays", args->overlays,
      "Folder for pictures: <category>/<image>.png (image | ground truth | anomaly map) "
      "and <category>_roc.png");
  add_model_load_options(*cmd, args->load);
  add_tiling_override_options(*cmd, args->load.tiling);
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace pv::cli
