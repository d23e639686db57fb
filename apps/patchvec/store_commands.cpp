// patchvec index, search, add-anomaly, reports: the vector store from the command line.
//
// Every command talks to one store: PostgreSQL + pgvector with --db URL, otherwise the embedded
// store (--store PATH, by default store.pvs beside the first model).
#include <cstdio>
#include <cstdlib>
#include <regex>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/indexing.h>
#include <patchvec/inspection.h>
#include <patchvec/inspector.h>
#include <patchvec/log.h>
#include <patchvec/model.h>
#include <patchvec/store.h>
#include <patchvec/text.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

// --- index ---------------------------------------------------------------------------------

struct IndexArgs {
  std::vector<std::filesystem::path> models;
  std::filesystem::path data;
  std::string from_store;  // a store file or a PostgreSQL URL
  StoreLocation store;
  std::string json;
  ModelLoadOptions load;
};

// A libpq URL or key=value string is a PostgreSQL store; anything else names an embedded store.
StoreLocation store_named(const std::string& name) {
  const bool postgres = name.starts_with("postgresql://") || name.starts_with("postgres://") ||
                        name.find('=') != std::string::npos;
  return postgres ? StoreLocation{.db = name} : StoreLocation{.file = name};
}

void run_index(const IndexArgs& args) {
  if (args.data.empty() == args.from_store.empty()) {
    throw Error("say where the images come from: --data DIR, or --from-store STORE");
  }
  std::unique_ptr<VectorStore> from;
  if (!args.from_store.empty()) {
    const StoreLocation source = store_named(args.from_store);
    std::error_code error;
    if (source.db.empty() && !std::filesystem::is_regular_file(source.file, error)) {
      throw Error("--from-store " + args.from_store + ": no such store file");
    }
    from = open_store(source);
  }
  auto store = open_store(args.store, store_beside(args.models.front()));
  nlohmann::ordered_json categories = nlohmann::ordered_json::array();
  for (const auto& path : args.models) {
    const Model model = Model::load(path, args.load);
    const std::string name = model.info().category;
    IndexReport report;
    if (from) {
      report = copy_category(model, *from, *store);
    } else {
      std::error_code error;
      const bool with_test = std::filesystem::is_directory(args.data / name / "test", error);
      report = index_category(model, read_category(args.data, name, with_test), *store);
    }
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.2f s", report.load_seconds);
    log::info(name + ": " + std::to_string(report.images) + " images" +
              (from ? " copied from " + from->location() + " (" + std::to_string(report.verified) +
                          " predicted again to verify) into "
                    : " loaded into ") +
              store->location() + " in " + seconds);
    nlohmann::ordered_json entry = {{"category", name},
                                    {"images", report.images},
                                    {"embed_seconds", report.embed_seconds},
                                    {"load_seconds", report.load_seconds}};
    if (from) entry["verified"] = report.verified;
    categories.push_back(std::move(entry));
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
  std::vector<std::filesystem::path> images;
  std::filesystem::path model;
  StoreLocation store;
  InspectOptions inspect;
  bool json = false;
  bool no_report = false;
  ModelLoadOptions load;
};

void run_search(const SearchArgs& args) {
  Model model = Model::load(args.model, args.load);
  const std::string category = model.info().category;
  std::map<std::string, Model> models;
  models.emplace(category, std::move(model));
  const Inspector inspector(std::move(models), open_store(args.store, store_beside(args.model)));
  const auto paths = expand_images(args.images);
  InspectOptions options = args.inspect;
  options.report = !args.no_report;
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const Inspected& inspected : inspector.inspect(category, paths, options)) {
    const Inspection& r = inspected.inspection;
    if (args.json) {
      results.push_back(json::inspection(r));
    } else {
      print_inspection(stdout, r, "", "");
    }
  }
  if (args.json) write_json("-", results.size() == 1 ? results[0] : results);
}

// --- add-anomaly ---------------------------------------------------------------------------

struct AddAnomalyArgs {
  std::vector<std::filesystem::path> images;
  std::filesystem::path model;
  std::string defect;
  std::string category;
  StoreLocation store;
  ModelLoadOptions load;
};

void run_add_anomaly(const AddAnomalyArgs& args) {
  try {
    check_defect_type(args.defect);
  } catch (const Error& e) {
    throw Error(std::string("--defect: ") + e.what());
  }
  const Model model = Model::load(args.model, args.load);
  if (!args.category.empty() && args.category != model.info().category) {
    throw Error("--category " + args.category + " but the model is for " + model.info().category +
                ": embeddings are only comparable within one model's category");
  }
  auto store = open_store(args.store, store_beside(args.model));
  const auto paths = expand_images(args.images);
  const std::vector<Prediction> predictions = model.predict(paths, "embed");
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const Prediction& p = predictions[i];
    const std::int64_t id = store->add_image({.path = paths[i].string(),
                                              .category = model.info().category,
                                              .split = Split::kAdded,
                                              .anomalous = true,
                                              .defect = args.defect,
                                              .score = p.score,
                                              .verdict = p.verdict,
                                              .embedding = p.defect_embedding});
    std::printf("added #%lld %s (%s, %s)\n", static_cast<long long>(id),
                printable(paths[i].string()).c_str(), model.info().category.c_str(),
                args.defect.c_str());
  }
}

// --- reports -------------------------------------------------------------------------------

struct ReportsArgs {
  StoreLocation store;
  std::string category;
  std::string since;
  std::string status;
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
  StoreLocation location = args.store;
  location.must_exist = true;
  auto store = open_store(location);
  const auto reports = store->reports(
      {.category = args.category,
       .status =
           args.status.empty() ? std::nullopt : std::optional(parse_report_status(args.status)),
       .since = since,
       .limit = args.limit});
  if (args.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const AnomalyReport& r : reports) out.push_back(json::report(r));
    write_json("-", out);
    return;
  }
  std::printf("%5s  %-20s  %-8s %9s %9s  %-16s  %-22s  %s\n", "id", "created", "category", "score",
              "threshold", "closest defect", "decision", "image");
  for (const AnomalyReport& r : reports) {
    const std::string closest = r.matches.empty() ? "-" : r.matches.front().image.defect;
    const std::string decision = r.status == ReportStatus::kOpen ? "open"
                                 : r.resolution == Resolution::kDefect
                                     ? "defect: " + r.defect
                                     : "false alarm" + std::string(r.applied ? " (in bank)" : "");
    // What the store holds came from outside: printed so that it cannot steer the terminal.
    std::printf("%5lld  %-20s  %-8s %9.3f %9.3f  %-16s  %-22s  %s\n", static_cast<long long>(r.id),
                printable(r.created).c_str(), printable(r.category).c_str(), r.score, r.threshold,
                printable(closest).c_str(), printable(decision).c_str(), printable(r.path).c_str());
  }
}

// --- resolve -------------------------------------------------------------------------------

struct ResolveArgs {
  std::int64_t report = 0;
  std::filesystem::path model;
  bool false_alarm = false;
  std::string defect;
  std::string note;
  std::string by;
  StoreLocation store;
  bool json = false;
  ModelLoadOptions load;
};

void run_resolve(const ResolveArgs& args) {
  if (args.false_alarm == !args.defect.empty()) {
    throw Error("say what the report is: --false-alarm, or --defect TYPE");
  }
  const Model model = Model::load(args.model, args.load);
  auto store = open_store(args.store, store_beside(args.model));
  const char* user = std::getenv("USER");
  const ResolvedReport resolved = resolve_report(
      model, *store, args.report,
      {.resolution = args.false_alarm ? Resolution::kFalseAlarm : Resolution::kDefect,
       .defect = args.defect,
       .note = args.note,
       .by = !args.by.empty()  ? args.by
             : user != nullptr ? user
                               : "cli"});
  if (args.json) {
    nlohmann::ordered_json out = json::report(resolved.report);
    out["image_id"] = resolved.image_id;
    write_json("-", out);
    return;
  }
  std::printf("report #%lld resolved as %s; its image is stored as #%lld (%s)\n",
              static_cast<long long>(args.report),
              args.false_alarm ? "a false alarm" : ("defect " + args.defect).c_str(),
              static_cast<long long>(resolved.image_id),
              args.false_alarm ? "a normal image; patchvec update --from-reports adds it to the "
                                 "model's memory bank"
                               : "a labelled anomaly");
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
--from-store copies the categories' images from another store indexed with the same models
(the embedded store to PostgreSQL, say) instead of predicting every image again: a few of them
are predicted to check that the models made them, and images added with add-anomaly come along.
Examples:
  patchvec index --model models/tile.pvm models/grid.pvm --data mvtec --db postgresql://localhost/patchvec
  patchvec index --model models/*.pvm --from-store models/store.pvs --db postgresql://localhost/patchvec)");
    cmd->add_option("--model", args->models, "Model files")->required()->check(CLI::ExistingFile);
    CLI::Option* data = cmd->add_option("--data", args->data, "Dataset root (MVTec AD layout)");
    cmd->add_option("--from-store", args->from_store,
                    "Copy the images from this store instead: an embedded store file, or a "
                    "PostgreSQL URL")
        ->excludes(data);
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
                    "Cosine similarity to the closest normal image for a normal verdict "
                    "(default: the model's calibrated rule)");
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
    cmd->add_option("--status", args->status, "Only open or only resolved reports")
        ->check(CLI::IsMember({"open", "resolved"}));
    cmd->add_option("--limit", args->limit, "At most this many")->capture_default_str();
    cmd->add_flag("--json", args->json, "Print JSON on stdout");
    cmd->callback([args] { run_reports(*args); });
  }
  {
    auto args = std::make_shared<ResolveArgs>();
    CLI::App* cmd = app.add_subcommand(
        "resolve", "Record an operator's decision on an anomaly report, and act on it");
    cmd->footer(R"(
A false alarm's image joins the category's normal images in the store (and, with
'patchvec update --from-reports', the model's memory bank); a defect's image is stored as a
labelled anomaly of its type, which later searches show among the closest known defects.
Examples:
  patchvec resolve --report 17 --false-alarm --model models/tile.pvm --db $URL
  patchvec resolve --report 18 --defect crack --note "edge, lot 4711" --model models/tile.pvm)");
    cmd->add_option("--report", args->report, "Report id (patchvec reports)")->required();
    cmd->add_option("--model", args->model, "Model file of the report's category")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_flag("--false-alarm", args->false_alarm, "The image is good after all");
    cmd->add_option("--defect", args->defect, "The image shows a defect of this type");
    cmd->add_option("--note", args->note, "A note for the record");
    cmd->add_option("--by", args->by, "Who decides (default: $USER)");
    cmd->add_flag("--json", args->json, "Print the resolved report as JSON");
    add_store_options(*cmd, args->store);
    add_model_load_options(*cmd, args->load);
    cmd->callback([args] { run_resolve(*args); });
  }
}

}  // namespace pv::cli
