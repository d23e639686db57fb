// patchvec demo: the whole system on a synthetic dataset, no server. It uses ImageNet weights when
// they are cached or can be downloaded, else a random backbone (one warning).
//
// Synthesise three flat-surface categories, train PatchCore on each, evaluate (table, overlays,
// ROC curves), load every image's embedding into the embedded vector store, and inspect new
// query images: similar known images for normal ones, an anomaly report for defective ones.
#include <cmath>
#include <cstdio>

#include <patchvec/dataset.h>
#include <patchvec/evaluation.h>
#include <patchvec/indexing.h>
#include <patchvec/inspection.h>
#include <patchvec/log.h>
#include <patchvec/model.h>
#include <patchvec/stopwatch.h>
#include <patchvec/store.h>
#include <patchvec/synth.h>
#include <patchvec/system.h>
#include <patchvec/training.h>
#include <patchvec/weights.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct DemoArgs {
  std::filesystem::path out = "demo";
  bool quick = false;
  std::string json;
  PatchCoreOptions model;
  std::string threshold = "far:0.01";
  std::string precision = "fp32";
  std::size_t k = 10;
  std::optional<double> min_similarity;
  std::string db;  // PostgreSQL + pgvector instead of the embedded store
  bool serve = false;
  int port = 8080;
};

// As many defective test images as good ones: the F1-optimal threshold leans towards flagging
// everything when defects outnumber good images, and the demo should show both verdicts fairly.
synth::DatasetOptions dataset_options(bool quick) {
  synth::DatasetOptions options;
  if (quick) {
    options.train = 20;
    options.test_good = 10;
    options.test_bad = 2;
  } else {
    options.train = 60;
    options.test_good = 30;
    options.test_bad = 6;
  }
  return options;
}

// The demo's weights: what --weights says, else ImageNet's when they are cached or can be
// downloaded, else the random backbone (the embedder then warns once). Returns them in words.
std::string choose_weights(DemoArgs& args, bool weights_given) {
  EmbedderOptions& embedder = args.model.embedder;
  if (weights_given) {
    return embedder.weights.empty() || embedder.weights == "random" ? "random backbone"
                                                                    : embedder.weights.string();
  }
  try {
    embedder.weights = resolve_weights("imagenet", embedder.backbone, {.progress = !log::quiet()});
    return "ImageNet (torchvision), " + embedder.weights.string();
  } catch (const WeightsUnavailable& e) {
    const std::string& reason = e.reason();
    const auto named = parse_weights_spec("imagenet", embedder.backbone);
    log::info("== weights: no ImageNet weights for " + embedder.backbone + " (" + reason +
              "): a random backbone instead. To use them: `patchvec weights fetch imagenet "
              "--backbone " +
              embedder.backbone + "` where there is internet, or copy " +
              std::filesystem::path(named.url).filename().string() + " into " +
              weights_cache_dir().string());
    embedder.weights = "random";
    return "random backbone (ImageNet weights unavailable)";
  }
}

// The synthetic dataset in `data`, reused when it matches `options`.
void prepare_dataset(const std::filesystem::path& data, const synth::DatasetOptions& options) {
  if (synth::dataset_matches(data, options)) {
    log::info("== dataset: reusing " + data.string());
  } else {
    log::info("== dataset: synthesising tile, leather and grid in " + data.string());
    synth::write_dataset(data, options);
  }
}

// What training the categories gave: their models, evaluations and summary.json entries.
struct Trained {
  std::vector<Model> models;
  std::vector<EvaluationReport> reports;
  nlohmann::ordered_json categories = nlohmann::ordered_json::array();
};

nlohmann::ordered_json category_json(const Category& category, const Model& model,
                                     const FitReport& fit, const EvaluationReport& report) {
  const ModelInfo& info = model.info();
  return {
      {"category", category.name},
      {"image_auroc", report.image_auroc},
      {"pixel_auroc", json::number_or_null(report.pixel_auroc)},
      {"pro", json::number_or_null(report.pro)},
      {"image_threshold", report.used.image},
      {"threshold", report.used.source},
      {"image_f1", report.image_f1},
      {"operating_points", json::operating_points(report)},
      {"min_similarity", info.similarity ? nlohmann::ordered_json(info.similarity->min_similarity)
                                         : nlohmann::ordered_json()},
      {"defect_precision_at_5", json::number_or_null(report.defect_precision_at_5)},
      {"defect_precision_at_5_mean_pooling",
       json::number_or_null(report.defect_precision_at_5_mean_pooling)},
      {"train_images", category.train.size()},
      {"test_images", category.test.size()},
      {"bank_size", info.bank_size},
      {"precision", precision_name(info.backbone.precision)},
      {"agreement", info.agreement ? json::agreement(*info.agreement) : nlohmann::ordered_json()},
      {"fit_seconds", fit.total_seconds},
      {"evaluate_seconds", report.seconds}};
}

// Trains, evaluates, saves and indexes every category; each category's dataset images in the
// store are replaced, what a user added stays.
Trained train_categories(const DemoArgs& args, const std::filesystem::path& data,
                         const std::vector<std::string>& names, VectorStore& store) {
  const std::filesystem::path models = args.out / "models";
  const std::filesystem::path pictures = args.out / "pictures";
  Trained out;
  for (const std::string& name : names) {
    log::info("== " + name + ": train, evaluate, index");
    const Category category = read_category(data, name);
    const std::optional<Precision> precision = parse_precision(args.precision, "--precision");
    PatchCoreOptions model = args.model;
    model.precision = precision.value_or(auto_precision());
    TrainResult result =
        train_category(category, {.model = model,
                                  .precision_fallback = !precision.has_value(),
                                  .thresholds = parse_threshold_policy(args.threshold),
                                  .evaluation = {.overlays_dir = pictures / name,
                                                 .roc_png = pictures / (name + "_roc.png")}});
    EvaluationReport report = std::move(*result.evaluation);
    result.model.save(models / (name + ".pvm"));
    index_category(result.model, category, result.train_embeddings, report.images, store);
    out.categories.push_back(category_json(category, result.model, result.fit, report));
    out.reports.push_back(std::move(report));
    out.models.push_back(std::move(result.model));
  }
  return out;
}

void print_results(const Trained& trained) {
  std::printf("\n");
  print_table(stdout, trained.reports);
  std::printf(
      "Thresholds (from good images; the test split's rates at them and at anomalib's "
      "F1-optimal ones):\n");
  for (std::size_t c = 0; c < trained.reports.size(); ++c) {
    const ModelInfo& info = trained.models[c].info();
    std::printf("%s: %s; similarity rule: best similarity >= %.4f\n", info.category.c_str(),
                info.thresholds->source.c_str(),
                info.similarity ? info.similarity->min_similarity : kDefaultMinSimilarity);
    print_operating_points(stdout, trained.reports[c]);
  }
}

// New images the store has never seen, one normal and one defective per category, inspected
// and drawn; their summary.json entries.
nlohmann::ordered_json inspect_queries(const DemoArgs& args, const Trained& trained,
                                       const synth::DatasetOptions& synth_options,
                                       VectorStore& store) {
  const std::filesystem::path queries = args.out / "queries";
  std::filesystem::create_directories(queries);
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (std::size_t c = 0; c < trained.models.size(); ++c) {
    const Model& model = trained.models[c];
    const std::string& name = model.info().category;
    const auto defects = synth::defect_types(name);
    for (const std::string& truth : {std::string(kGoodLabel), defects[c % defects.size()]}) {
      const synth::Surface surface = synth::render({.category = name,
                                                    .defect = truth,
                                                    .stream = "query",
                                                    .index = 0,
                                                    .size = synth_options.size,
                                                    .seed = synth_options.seed});
      const std::filesystem::path path = queries / (name + "_" + truth + ".png");
      write_png(path, surface.image);
      const Prediction prediction = model.predict(surface.image);  // = the PNG's pixels
      const Inspection r = inspect(model, store, prediction, path.string(),
                                   {.k = args.k, .min_similarity = args.min_similarity});
      write_heatmap(args.out / "pictures" / "queries", path, model, prediction);
      print_inspection(stdout, r, truth, args.out);
      nlohmann::ordered_json result = json::inspection(r);
      result["truth"] = truth;
      results.push_back(std::move(result));
    }
  }
  return results;
}

void run_demo(DemoArgs& args, bool weights_given) {
  Stopwatch total;
  const std::string weights = choose_weights(args, weights_given);
  const std::filesystem::path data = args.out / "data";
  const std::filesystem::path models = args.out / "models";
  const synth::DatasetOptions synth_options = dataset_options(args.quick);
  prepare_dataset(data, synth_options);
  std::filesystem::create_directories(models);
  std::unique_ptr<VectorStore> store = open_store({.db = args.db}, models / "store.pvs");
  Trained trained = train_categories(args, data, synth_options.categories, *store);
  if (!args.db.empty()) {
    log::info("== building the HNSW indexes in " + store->location());
    store->build_indexes();
  }
  print_results(trained);
  const nlohmann::ordered_json queries = inspect_queries(args, trained, synth_options, *store);

  const double seconds = total.total();
  std::printf(R"(
Done in %.0f s with weights: %s. Everything is in %s:
  pictures/<category>/*.png     test images: image | ground truth | anomaly map
  pictures/<category>_roc.png   ROC curves;  pictures/queries/*.png: the query heatmaps
  models/*.pvm, models/store.pvs  the models and the embedded vector store (unless --db)
Next:
  real data:     patchvec train --data /path/to/mvtec --category tile,leather,grid --out models
  weights:       patchvec weights list (docs/guide.md: 'Pretrained weights'); a random backbone
                 is far less accurate than ImageNet's.
  anomalib:      patchvec import-anomalib model.ckpt --category bottle --out models
)",
              seconds, weights.c_str(), args.out.string().c_str());
  if (!args.json.empty()) {
    write_json(args.json, {{"dataset", data.string()},
                           {"quick", args.quick},
                           {"pretrained", trained.models.front().info().pretrained},
                           {"weights", weights},
                           {"categories", trained.categories},
                           {"queries", queries},
                           {"store", store->location()},
                           {"pictures", (args.out / "pictures").string()},
                           {"seconds", seconds}});
  }
  if (args.serve) {
    store.reset();  // the service opens the store itself
    trained = {};
    std::fflush(stdout);
    serve_until_signal({.models_dir = models,
                        .store = {.db = args.db},
                        .port = args.port,
                        .inspect = {.k = args.k, .min_similarity = args.min_similarity}});
  }
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto args = std::make_shared<DemoArgs>();
  CLI::App* cmd = app.add_subcommand(
      "demo",
      "The whole system end to end on a synthetic dataset: train tile, leather and grid, "
      "evaluate, index, and search similar images or report anomalies");
  cmd->footer(R"(
Writes <out>/data (the synthetic dataset; reused when already there), <out>/models (one .pvm per
category and the embedded store), <out>/pictures (overlays, ROC curves, query heatmaps) and
<out>/queries (new images inspected at the end). About 2 minutes on 2 cores; --quick: under one.
Without --weights it uses ImageNet weights when they are in the cache or can be downloaded
(PATCHVEC_OFFLINE=1: the cache only), else a random backbone.)");
  cmd->add_option("--out", args->out, "Output folder")->capture_default_str();
  cmd->add_flag("--quick", args->quick, "Fewer images: a one-minute run (used by the tests)");
  cmd->add_option("--json", args->json, "Write a JSON summary to this file ('-' = stdout)");
  add_embedder_options(*cmd, args->model.embedder);
  cmd->add_option("--k", args->k, "Similar images to show")->capture_default_str();
  cmd->add_flag("--serve", args->serve,
                "Then start the inspection service on the demo's models (open the page at once)");
  cmd->add_option("--port", args->port, "Port for --serve")->capture_default_str();
  cmd->add_option("--db", args->db,
                  "Keep the embeddings in PostgreSQL + pgvector (a libpq URL) instead of the "
                  "embedded store");
  cmd->add_option("--min-similarity", args->min_similarity,
                  "Cosine similarity a normal image needs to its closest known normal image "
                  "(default: each model's calibrated rule)");
  cmd->add_option("--threshold", args->threshold,
                  "How thresholds are set: far:R (good images, false-alarm rate R), f1, or a "
                  "number (see train --help)")
      ->capture_default_str();
  cmd->add_option("--precision", args->precision,
                  "What the models compute in: fp32, bf16, int8 or auto (see train --help)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "int8", "auto"}));
  cmd->callback([args, cmd] {
    args->model.max_memory_bytes = default_memory_budget();
    run_demo(*args, cmd->count("--weights") > 0);
  });
}

}  // namespace pv::cli
