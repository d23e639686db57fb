// patchvec update: good images join a model's memory bank without refitting.
#include <cstdio>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/model.h>
#include <patchvec/update.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {
namespace {

struct UpdateArgs {
  std::filesystem::path model;
  std::vector<std::filesystem::path> images;
  bool from_reports = false;
  StoreLocation store;
  bool json = false;
  ModelLoadOptions load;
};

void run_update(const UpdateArgs& args) {
  if (args.images.empty() && !args.from_reports) {
    throw Error("nothing to add: give --add-normal IMAGES and/or --from-reports");
  }
  Model model = Model::load(args.model, args.load);
  auto store = open_store(args.store, store_beside(args.model));
  const auto images =
      args.images.empty() ? std::vector<std::filesystem::path>() : expand_images(args.images);
  const ModelUpdate u = update_model(model, args.model, *store, images, args.from_reports);
  const UpdateReport& b = u.bank;
  if (args.json) {
    write_json("-", {{"model", args.model.string()},
                     {"revision", model.info().revision},
                     {"images", b.images},
                     {"patches", b.patches},
                     {"centres_added", b.centres_added},
                     {"bank_size", model.info().bank_size},
                     {"covering_radius_before", b.covering_radius_before},
                     {"covering_radius_after", b.covering_radius_after},
                     {"reports_applied", u.reports_applied},
                     {"images_stored", u.images_stored},
                     {"seconds", b.seconds}});
    return;
  }
  std::printf(
      "%s: %lld good images (%lld from resolved false alarms) added %lld of their %lld "
      "patches to the memory bank, now %lld; covering radius %.4g -> %.4g; revision %lld "
      "-> %s\n",
      model.info().category.c_str(), static_cast<long long>(b.images),
      static_cast<long long>(u.reports_applied.size()), static_cast<long long>(b.centres_added),
      static_cast<long long>(b.patches), static_cast<long long>(model.info().bank_size),
      b.covering_radius_before, b.covering_radius_after,
      static_cast<long long>(model.info().revision), args.model.c_str());
}

}  // namespace

void add_update_command(CLI::App& app) {
  auto args = std::make_shared<UpdateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "update", "Add good images to a model's memory bank without refitting (false alarms too)");
  cmd->footer(R"(
The greedy coreset selection continues from the model's bank: a new patch joins it when it lies
farther than the bank's covering radius from every bank patch. The model file is rewritten
atomically with its revision incremented; thresholds stay (good images can only score lower).
Examples:
  patchvec update --model models/tile.pvm --add-normal new_lot/ --db $URL
  patchvec update --model models/tile.pvm --from-reports --db $URL     # nightly: false alarms)");
  cmd->add_option("--model", args->model, "Model file, rewritten in place")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--add-normal", args->images, "Good images, or folders of them");
  cmd->add_flag("--from-reports", args->from_reports,
                "Also the images of reports resolved as false alarms, not added yet");
  cmd->add_flag("--json", args->json, "Print a JSON summary on stdout");
  add_store_options(*cmd, args->store);
  add_model_load_options(*cmd, args->load);
  cmd->callback([args] { run_update(*args); });
}

}  // namespace pv::cli
