// patchvec index, search, add-anomaly, reports: the vector store from the command line.
//
// Every command talks to one store: PostgreSQL + pgvector with --db URL, otherwise the embedded
// store (--store PATH, by default store.pvs beside the first model).
#include <cstdio>
#include <regex>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/inspection.h>
#include <patchvec/model.h>
#include <patchvec/store.h>

#include "cli_common.h"
#include "commands.h"
#include "inspect/inspection_json.h"
#include "util/log.h"
#include "util/stopwatch.h"

namespace pv::cli {
namespace {

struct StoreArgs {
  std::string db;               // libpq URL; empty: embedded
  std::filesystem::path store;  // embedded store file
  bool exact = false;
};

void add_store_options(CLI::App& cmd, StoreArgs& args) {
  cmd.add_option("--db", args.db,
                 "PostgreSQL + pgvector: a libpq URL, postgresql://user:pass@host:port/db (PG* "
                 "environment variables fill in what it leaves out)");
  cmd.add_option(
      "--store", args.store,
      "Embedded store file (default: store.pvs beside the model) when --db is not given");
  cmd.add_flag("--exact", args.exact,
               "PostgreSQL: exact scans instead of the HNSW index (the embedded store is exact)");
}

std::unique_ptr<VectorStore> open_store(const StoreArgs& args, const std::filesystem::path& model) {
  if (!args.db.empty()) return open_postgres_store(args.db, args.exact);
  if (!args.store.empty()) return open_embedded_store(args.store);
  if (model.empty()) throw Error("say which store: --db URL or --store PATH");
  return open_embedded_store(model.parent_path() / "store.pvs");
}

// --- index ---------------------------------------------------------------------------------

struct IndexArgs {
  std::vector<std::filesystem::path> models;
  std::filesystem::path data;
  StoreArgs store;
  std::string json;
  ModelLoadOptions load;
};

void run_index(const IndexArgs& args) {
  auto store = open_store(args.store, args.models.front());
  nlohmann::ordered_json categories = nlohmann::ordered_json::array();
  for (const auto& path : args.models) {
    const Model model = Model::load(path, args.load);
    const std::string name = model.info().category;
    std::error_code error;
    const bool with_test = std::filesystem::is_directory(args.data / name / "test", error);
    const Category category = read_category(args.data, name, with_test);
    std::vector<std::filesystem::path> paths;
    std::vector<const Sample*> samples;
    for (const auto* split : {&category.train, &category.test}) {
      for (const Sample& s : *split) {
        paths.push_back(s.image);
        samples.push_back(&s);
      }
    }
    Stopwatch clock;
    const std::vector<Prediction> predictions = model.predict(paths, "embed " + name);
    const double embed_seconds = clock.lap();
    std::vector<StoredImage> images;
    for (std::size_t i = 0; i < paths.size(); ++i) {
      const Prediction& p = predictions[i];
      const bool scored = model.info().thresholds.has_value();
      images.push_back({.path = paths[i].string(),
                        .category = name,
                        .split = samples[i]->split == Split::kTrain ? "train" : "test",
                        .anomalous = samples[i]->anomalous(),
                        .defect = samples[i]->defect,
                        .score = p.score,
                        .verdict = scored ? (p.anomalous ? "anomalous" : "normal") : "",
                        .embedding = p.embedding});
    }
    const std::size_t stored = store->replace_dataset(name, images);
    const std::size_t patches = store->replace_patches(
        name, model.memory_bank(), static_cast<std::size_t>(model.info().grid.dim));
    const double load_seconds = clock.lap();
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.2f s", load_seconds);
    log::info(name + ": " + std::to_string(stored) + " images" +
              (patches ? " and " + std::to_string(patches) + " bank vectors" : std::string()) +
              " loaded into " + store->location() + " in " + seconds);
    categories.push_back({{"category", name},
                          {"images", stored},
                          {"patches", patches},
                          {"embed_seconds", embed_seconds},
                          {"load_seconds", load_seconds}});
  }
  log::info("building search indexes...");
  const double index_seconds = store->build_indexes();
  if (index_seconds > 0) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f s", index_seconds);
    log::info(std::string("indexes built in ") + seconds);
  }
  if (!args.json.empty()) {
    write_json(args.json, {{"store", store->location()},
                           {"categories", categories},
                           {"index_seconds", index_seconds}});
  }
}

// --- search --------------------------------------------------------------------------------

struct SearchArgs {
  std::vector<std::string> images;
  std::filesystem::path model;
  StoreArgs store;
  InspectOptions inspect;
  bool json = false;
  bool no_report = false;
  ModelLoadOptions load;
};

void run_search(const SearchArgs& args) {
  const Model model = Model::load(args.model, args.load);
  auto store = open_store(args.store, args.model);
  const auto paths = expand_images(args.images);
  const std::vector<Prediction> predictions = model.predict(paths, "search");
  InspectOptions options = args.inspect;
  options.report = !args.no_report;
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const Inspection r = inspect(model, *store, predictions[i], paths[i].string(), options);
    if (args.json) {
      results.push_back(to_json(r));
    } else {
      print_inspection(stdout, r, "", "");
    }
  }
  if (args.json) write_json("-", results.size() == 1 ? results[0] : results);
}

// --- add-anomaly ---------------------------------------------------------------------------

struct AddAnomalyArgs {
  std::vector<std::string> images;
  std::filesystem::path model;
  std::string defect;
  std::string category;
  StoreArgs store;
  ModelLoadOptions load;
};

void run_add_anomaly(const AddAnomalyArgs& args) {
  const Model model = Model::load(args.model, args.load);
  if (!args.category.empty() && args.category != model.info().category) {
    throw Error("--category " + args.category + " but the model is for " + model.info().category +
                ": embeddings are only comparable within one model's category");
  }
  auto store = open_store(args.store, args.model);
  const auto paths = expand_images(args.images);
  const std::vector<Prediction> predictions = model.predict(paths, "embed");
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const Prediction& p = predictions[i];
    const std::int64_t id = store->add_image({.path = paths[i].string(),
                                              .category = model.info().category,
                                              .split = "added",
                                              .anomalous = true,
                                              .defect = args.defect,
                                              .score = p.score,
                                              .verdict = p.anomalous ? "anomalous" : "normal",
                                              .embedding = p.embedding});
    std::printf("added #%lld %s (%s, %s)\n", static_cast<long long>(id), paths[i].c_str(),
                model.info().category.c_str(), args.defect.c_str());
  }
}

// --- reports -------------------------------------------------------------------------------

struct ReportsArgs {
  StoreArgs store;
  std::string category;
  std::string since;
  std::size_t limit = 20;
  bool json = false;
};

void run_reports(const ReportsArgs& args) {
  static const std::regex kTime(R"(\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?Z?)?)");
  if (!args.since.empty() && !std::regex_match(args.since, kTime)) {
    throw Error("--since " + args.since + ": expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)");
  }
  std::string since = args.since;
  if (!since.empty() && since.back() == 'Z') since.pop_back();
  auto store = open_store(args.store, {});
  const auto reports = store->reports(args.category, args.limit, since);
  if (args.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const AnomalyReport& r : reports) out.push_back(json::report(r));
    write_json("-", out);
    return;
  }
  std::printf("%5s  %-20s  %-8s %9s %9s  %-16s  %s\n", "id", "created", "category", "score",
              "threshold", "closest defect", "image");
  for (const AnomalyReport& r : reports) {
    const std::string closest = r.matches.empty() ? "-" : r.matches.front().image.defect;
    std::printf("%5lld  %-20s  %-8s %9.3f %9.3f  %-16s  %s\n", static_cast<long long>(r.id),
                r.created.c_str(), r.category.c_str(), r.score, r.threshold, closest.c_str(),
                r.path.c_str());
  }
}

}  // namespace

void add_store_commands(CLI::App& app) {
  {
    auto args = std::make_shared<IndexArgs>();
    CLI::App* cmd = app.add_subcommand(
        "index",
        "Load every train/test image's embedding (and the memory bank) into the vector store");
    cmd->footer(R"(
Each category is replaced in one transaction: re-indexing never duplicates, and a failure leaves
the previous contents. With --db, HNSW indexes are built after loading (timed separately).
Example:
  patchvec index --model models/tile.pvm models/grid.pvm --data mvtec --db postgresql://localhost/patchvec)");
    cmd->add_option("--model", args->models, "Model files")->required()->check(CLI::ExistingFile);
    cmd->add_option("--data", args->data, "Dataset root (MVTec AD layout)")->required();
    add_store_options(*cmd, args->store);
    cmd->add_option("--json", args->json, "Write timings as JSON to this file ('-' = stdout)");
    add_model_load_options(*cmd, args->load);
    cmd->callback([args] { run_index(*args); });
  }
  {
    auto args = std::make_shared<SearchArgs>();
    CLI::App* cmd = app.add_subcommand(
        "search", "Inspect images: the 10 most similar known images, or an anomaly report");
    cmd->footer(R"(
An image is normal when its PatchCore score is below the model's threshold and its closest stored
normal image is at least --min-similarity similar (cosine). Then the most similar normal images are
listed; otherwise it is reported (a row in the store's reports) with the closest known defects.)");
    cmd->add_option("images", args->images, "Images, or folders of images")->required();
    cmd->add_option("--model", args->model, "Model file")->required()->check(CLI::ExistingFile);
    add_store_options(*cmd, args->store);
    cmd->add_option("--k", args->inspect.k, "How many similar images")->capture_default_str();
    cmd->add_option("--min-similarity", args->inspect.min_similarity,
                    "Cosine similarity to the closest normal image for a normal verdict")
        ->capture_default_str();
    cmd->add_flag("--json", args->json, "Print JSON on stdout");
    cmd->add_flag("--no-report", args->no_report, "Do not write anomaly reports");
    add_model_load_options(*cmd, args->load);
    cmd->callback([args] { run_search(*args); });
  }
  {
    auto args = std::make_shared<AddAnomalyArgs>();
    CLI::App* cmd = app.add_subcommand(
        "add-anomaly", "Store labelled defective images so that searches can name their type");
    cmd->add_option("images", args->images, "Images, or folders of images")->required();
    cmd->add_option("--model", args->model, "Model file of the images' category")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--defect", args->defect, "Defect type, e.g. crack")->required();
    cmd->add_option("--category", args->category, "Category (checked against the model)");
    add_store_options(*cmd, args->store);
    add_model_load_options(*cmd, args->load);
    cmd->callback([args] { run_add_anomaly(*args); });
  }
  {
    auto args = std::make_shared<ReportsArgs>();
    CLI::App* cmd = app.add_subcommand("reports", "List anomaly reports, newest first");
    add_store_options(*cmd, args->store);
    cmd->add_option("--category", args->category, "Only this category");
    cmd->add_option("--since", args->since,
                    "Only reports from this UTC time on: 2026-11-28 or 2026-11-28T14:00");
    cmd->add_option("--limit", args->limit, "At most this many")->capture_default_str();
    cmd->add_flag("--json", args->json, "Print JSON on stdout");
    cmd->callback([args] { run_reports(*args); });
  }
}

}  // namespace pv::cli
