// patchvec publish / patchvec models: model files kept in PostgreSQL, for services started with
// --db and no --models.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <patchvec/model_registry.h>
#include <patchvec/publishing.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct PublishArgs {
  std::vector<std::filesystem::path> models;
  std::string db;
  bool json = false;
  ModelLoadOptions load;
};

struct ModelsArgs {
  std::string db;
  bool all = false;
  bool json = false;
};

nlohmann::ordered_json published_json(const PublishedModel& p) {
  return {{"category", p.category}, {"revision", p.revision}, {"sha256", p.sha256},
          {"bytes", p.bytes},       {"created", p.created},   {"source", p.source}};
}

void run_publish(const PublishArgs& args) {
  const auto registry = ModelRegistry::open(args.db);
  const std::vector<Publication> done = publish_model_files(*registry, args.models, args.load);
  if (args.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const Publication& p : done) {
      nlohmann::ordered_json entry = published_json(p.model);
      entry["file"] = p.file.string();
      entry["added"] = p.added;
      out.push_back(std::move(entry));
    }
    write_json("-", out);
    return;
  }
  for (const Publication& p : done) {
    if (p.added) {
      std::printf("published %s as %s revision %lld (sha256 %.12s, %lld bytes)\n",
                  p.file.string().c_str(), p.model.category.c_str(),
                  static_cast<long long>(p.model.revision), p.model.sha256.c_str(),
                  static_cast<long long>(p.model.bytes));
    } else {
      std::printf("%s is %s revision %lld already (sha256 %.12s): nothing to publish\n",
                  p.file.string().c_str(), p.model.category.c_str(),
                  static_cast<long long>(p.model.revision), p.model.sha256.c_str());
    }
  }
}

void run_models(const ModelsArgs& args) {
  const auto registry = ModelRegistry::open(args.db);
  const std::vector<PublishedModel> models = registry->list(args.all);
  if (args.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const PublishedModel& p : models) out.push_back(published_json(p));
    write_json("-", out);
    return;
  }
  if (models.empty()) {
    std::printf("no models are published in %s (patchvec publish --db URL MODEL.pvm)\n",
                registry->location().c_str());
    return;
  }
  std::printf("%-20s %8s  %-12s  %10s  %-20s  %s\n", "category", "revision", "sha256", "MiB",
              "created (UTC)", "source");
  for (const PublishedModel& p : models) {
    std::printf("%-20s %8lld  %-12.12s  %10.1f  %-20s  %s\n", p.category.c_str(),
                static_cast<long long>(p.revision), p.sha256.c_str(),
                static_cast<double>(p.bytes) / (1 << 20), p.created.c_str(), p.source.c_str());
  }
}

}  // namespace

void add_publish_commands(CLI::App& app) {
  {
    auto args = std::make_shared<PublishArgs>();
    CLI::App* cmd = app.add_subcommand(
        "publish", "Store model files in PostgreSQL, for services that serve from the database");
    cmd->footer(R"(
Each file is loaded and checked first (nothing is published if one does not load), then stored as
the next revision of its category; a file identical to the category's newest revision is not
stored again. Services started with 'serve --db URL' and no --models serve the newest revisions
and swap in new ones within a second, between requests.
Example:
  patchvec publish --db postgresql://localhost/patchvec models/tile.pvm models/grid.pvm)");
    cmd->add_option("models", args->models, "Model files (.pvm)")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--db", args->db,
                    "PostgreSQL: a libpq URL, postgresql://user:pass@host:port/db (PG* "
                    "environment variables fill in what it leaves out)")
        ->required();
    cmd->add_flag("--json", args->json, "Print what was published as JSON");
    add_model_load_options(*cmd, args->load);
    cmd->callback([args] { run_publish(*args); });
  }
  {
    auto args = std::make_shared<ModelsArgs>();
    CLI::App* cmd = app.add_subcommand("models", "List the models published in PostgreSQL");
    cmd->add_option("--db", args->db,
                    "PostgreSQL: a libpq URL (PG* environment variables fill in the rest)")
        ->required();
    cmd->add_flag("--all", args->all, "Every revision, not only each category's newest");
    cmd->add_flag("--json", args->json, "Print JSON on stdout");
    cmd->callback([args] { run_models(*args); });
  }
}

}  // namespace pv::cli
