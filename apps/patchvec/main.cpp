// patchvec: visual anomaly inspection with PatchCore and pgvector.
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/log.h>
#include <patchvec/system.h>
#include <patchvec/version.h>

#include "commands.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr const char* kDescription =
    "PatchVec learns what defect-free surfaces look like (PatchCore) and finds anomalies in new "
    "images.";

constexpr const char* kFooter = R"(
Examples:
  patchvec demo                                     # everything, on synthetic data
  patchvec synth --out data                         # an MVTec-like dataset of your own
  patchvec train --data mvtec --category tile,leather,grid --out models
  patchvec eval --model models/tile.pvm --data mvtec --json tile.json --overlays pictures
  patchvec predict --model models/tile.pvm new_images/ --heatmap heatmaps
  patchvec train --data mvtec --category tile --weights imagenet --out models
  patchvec import-anomalib model.ckpt --category bottle --out models   # anomalib's PatchCore
  patchvec index --model models/tile.pvm --data mvtec --db postgresql://localhost/patchvec
  patchvec search part.png --model models/tile.pvm --db postgresql://localhost/patchvec
  patchvec resolve --report 17 --false-alarm --model models/tile.pvm --db postgresql://...
  patchvec update --model models/tile.pvm --from-reports --db postgresql://localhost/patchvec

Run 'patchvec <command> --help' for the options of a command.)";

// OpenBLAS picks its kernels when it loads, before main(); on CPUs it does not know it falls back
// to slow generic ones. Commands that multiply large matrices re-run this program once with
// OPENBLAS_CORETYPE set (see patchvec/system.h); the others are not worth the second start-up.
void use_fast_blas(int argc, char** argv) {
  const char* command = nullptr;
  for (int i = 1; i < argc && command == nullptr; ++i) {
    if (argv[i][0] != '-') command = argv[i];
  }
  if (command == nullptr) return;
  const std::string name = command;
  if (name != "train" && name != "eval" && name != "predict" && name != "demo" && name != "index" &&
      name != "search" && name != "add-anomaly" && name != "serve" && name != "station" &&
      name != "update" && name != "resolve")
    return;
  const std::string core = pv::better_blas_core();
  if (core.empty()) return;
  ::setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  ::execv("/proc/self/exe", argv);  // only returns on failure: carry on with the slow kernels
}

int run(int argc, char** argv) {
  CLI::App app(kDescription, "patchvec");
  app.footer(kFooter);
  app.require_subcommand(1);
  app.fallthrough();  // -q and --quiet also after the command name
  app.set_version_flag("--version", std::string("patchvec ") + pv::version());
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors on stderr (no progress bars)");
  app.parse_complete_callback([&] { pv::log::set_quiet(quiet); });
  pv::cli::add_train_command(app);
  pv::cli::add_eval_command(app);
  pv::cli::add_predict_command(app);
  pv::cli::add_embed_command(app);
  pv::cli::add_synth_command(app);
  pv::cli::add_demo_command(app);
  pv::cli::add_store_commands(app);
  pv::cli::add_update_command(app);
  pv::cli::add_publish_commands(app);
  pv::cli::add_serve_command(app);
  pv::cli::add_station_command(app);
  pv::cli::add_weights_command(app);
  pv::cli::add_import_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  } catch (const pv::Error& e) {
    std::cerr << "patchvec: error: " << e.what() << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "patchvec: internal error: " << e.what() << "\n";
    return kExitFailure;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  use_fast_blas(argc, argv);
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // setting up the options failed: out of memory, a bug
    std::cerr << "patchvec: internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "patchvec: internal error\n";
  }
  return kExitFailure;
}
