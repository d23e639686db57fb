// patchvec train: fit a PatchCore model per category and save DIR/<category>.pvm.
#include <cstdio>
#include <iostream>
#include <sstream>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/evaluation.h>
#include <patchvec/log.h>
#include <patchvec/model.h>
#include <patchvec/system.h>
#include <patchvec/training.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct TrainArgs {
  std::filesystem::path data;
  std::string categories;
  std::filesystem::path out;
  std::string max_memory;
  std::string json;
  bool no_evaluation = false;
  std::string upsampling = "bilinear";
  std::string coreset = "fast";
  std::string threshold = "far:0.01";
  std::string precision = "fp32";
  double max_false_alarm_rate = 0;  // 0: not given
  PatchCoreOptions model;
};

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> items;
  std::stringstream stream(list);
  for (std::string item; std::getline(stream, item, ',');) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

void run_train(const TrainArgs& args) {
  const auto categories = split(args.categories);
  if (categories.empty()) throw pv::Error("--category names no category");
  TrainOptions options{.model = args.model, .evaluate = !args.no_evaluation};
  options.model.max_memory_bytes =
      args.max_memory.empty() ? default_memory_budget() : parse_bytes(args.max_memory);
  options.model.upsampling = parse_upsampling(args.upsampling, "--map-upsampling");
  options.model.coreset = parse_coreset_method(args.coreset, "--coreset");
  const std::optional<Precision> precision = parse_precision(args.precision, "--precision");
  options.model.precision = precision.value_or(auto_precision());
  options.precision_fallback = !precision.has_value();
  options.thresholds =
      args.max_false_alarm_rate > 0
          ? parse_threshold_policy("far:" + std::to_string(args.max_false_alarm_rate),
                                   "--max-false-alarm-rate")
          : parse_threshold_policy(args.threshold);

  std::vector<EvaluationReport> reports;
  nlohmann::ordered_json summary = nlohmann::ordered_json::array();
  for (const auto& name : categories) {
    const bool has_test = std::filesystem::is_directory(args.data / name / "test");
    const Category category = read_category(args.data, name, has_test);
    log::info("== " + name + ": " + std::to_string(category.train.size()) + " training images");
    TrainResult result = train_category(category, options);
    const Model& model = result.model;
    const Thresholds& t = *model.info().thresholds;
    nlohmann::ordered_json entry = json::training(result);
    if (result.evaluation) reports.push_back(*result.evaluation);
    const auto path = args.out / (name + ".pvm");
    std::filesystem::create_directories(args.out);  // only now: a failed run leaves no folder
    model.save(path);
    entry["model"] = path.string();
    std::FILE* out = human_output(args.json);
    std::fprintf(out, "%s: bank of %lld patches (%.0f%% of %lld) in %.1f s -> %s\n", name.c_str(),
                 static_cast<long long>(model.info().bank_size), 100.0 * args.model.coreset_ratio,
                 static_cast<long long>(model.info().train_patches), result.fit.total_seconds,
                 path.c_str());
    if (model.info().options.embedder.tiling.enabled()) {
      std::fprintf(out, "  images cut into %s\n",
                   describe(model.info().options.embedder.tiling).c_str());
    }
    std::fprintf(out, "  threshold %.4g: %s\n", t.image, t.source.c_str());
    if (model.info().agreement) {
      std::fprintf(out, "  %s, checked against fp32: %s\n",
                   precision_name(model.info().backbone.precision),
                   describe(*model.info().agreement).c_str());
    }
    if (result.evaluation) print_operating_points(out, *result.evaluation);
    summary.push_back(entry);
  }
  if (!reports.empty()) print_table(human_output(args.json), reports);
  if (!args.json.empty()) write_json(args.json, summary);
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Fit PatchCore on the defect-free training images of each category, set its thresholds "
      "and save OUT/<category>.pvm; with a labelled test split, also report AUROC");
  cmd->footer(R"(
Thresholds come from good images by default (--threshold far:0.01): each training image is scored
by a bank fitted without it, the test split's good images (if any) by the model, and the threshold
is set so that a new good image from the same process is flagged with probability at most 1 %.
That needs 99 good images or more; with fewer, the tightest rate they support is used and said.
It does not hold across a change of process (material lot, camera, lighting): update or retrain.
Examples:
  patchvec train --data mvtec --category tile,leather,grid --out models
  patchvec train --data line3 --category housing --out models --threshold far:0.001
  patchvec train --data mvtec --category tile --out models --threshold f1   # anomalib's choice
  patchvec train --data wafers --category die --out models --tile 256 --tile-scale 0.5  # 2048² images)");
  cmd->add_option("--data", args->data, "Dataset root in MVTec AD layout")->required();
  cmd->add_option("--category", args->categories, "Category, or several separated by commas")
      ->required();
  cmd->add_option("--out", args->out, "Folder for the model files")->required();
  add_embedder_options(*cmd, args->model.embedder);
  add_tiling_options(*cmd, args->model.embedder.tiling);
  cmd->add_option("--coreset-ratio", args->model.coreset_ratio,
                  "Fraction of training patches kept in the memory bank (1 = all, no sampling)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option(
         "--coreset", args->coreset,
         "How the bank is chosen: fast (rounds of centres, in parallel; a covering radius "
         "within 2/0.95 of the optimum, within about 1 % of exact's on real data) or exact "
         "(the textbook greedy selection, anomalib's)")
      ->capture_default_str()
      ->check(CLI::IsMember(
          {coreset_method_name(CoresetMethod::kFast), coreset_method_name(CoresetMethod::kExact)}));
  cmd->add_option("--num-neighbors", args->model.num_neighbors,
                  "Bank neighbours used to re-weight the image score (1 = plain maximum)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--projection-dim", args->model.projection_dim,
                  "Dimension of the random projection for coreset selection (0 = anomalib's "
                  "Johnson-Lindenstrauss choice)")
      ->capture_default_str();
  cmd->add_option("--seed", args->model.seed,
                  "Seed of the random projection, the first coreset centre and a random backbone")
      ->capture_default_str();
  cmd->add_option("--max-memory", args->max_memory,
                  "Memory budget, e.g. 4G: training patches beyond it go to a temporary file "
                  "(default: half of this machine's memory)");
  cmd->add_option("--map-upsampling", args->upsampling,
                  "How patch scores become a pixel map: bilinear, or nearest (anomalib 2.x's exact "
                  "choice)")
      ->capture_default_str()
      ->check(CLI::IsMember(
          {upsampling_name(MapUpsampling::kBilinear), upsampling_name(MapUpsampling::kNearest)}));
  cmd->add_option("--threshold", args->threshold,
                  "How to set the decision thresholds: far:R (from good images, a new good image "
                  "is flagged with probability <= R), f1 (F1-optimal on the labelled test split, "
                  "anomalib's default) or a number")
      ->capture_default_str();
  cmd->add_option("--max-false-alarm-rate", args->max_false_alarm_rate,
                  "The same as --threshold far:R")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--precision", args->precision,
                  "What the model computes in: fp32 (exact, the reference), bf16 (2-4x faster "
                  "with AVX512-BF16/AMX) or int8 (2-4x with VNNI, about 2x on AVX2 alone); the "
                  "bank in bfloat16; each "
                  "checked against fp32 on the calibration images and refused if a verdict "
                  "flips; or auto: the fastest this CPU runs natively, falling back to fp32 when "
                  "the check fails")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "int8", "auto"}));
  add_search_option(*cmd, args->model.search);
  cmd->add_flag("--no-evaluation", args->no_evaluation,
                "Do not evaluate on the labelled test split (its good images still calibrate)");
  cmd->add_option("--json", args->json, "Write a JSON summary to this file ('-' = stdout)");
  cmd->callback([args] { run_train(*args); });
}

}  // namespace pv::cli
