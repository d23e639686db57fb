// patchvec: visual anomaly inspection with PatchCore and pgvector.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include <patchvec/error.h>

#include "commands.h"
#include "util/log.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr const char* kDescription =
    "PatchVec learns what defect-free surfaces look like (PatchCore) and finds anomalies in new "
    "images.";

constexpr const char* kFooter = R"(
Examples:
  patchvec embed --data mvtec --category tile --out tile.npy
  patchvec embed --data mvtec --category tile --weights wide_resnet50_2.safetensors --out tile.npy

Run 'patchvec <command> --help' for the options of a command.)";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(kDescription, "patchvec");
  app.footer(kFooter);
  app.require_subcommand(1);
  app.set_version_flag("--version", "patchvec 0.1.0");
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors on stderr (no progress bars)");
  app.parse_complete_callback([&] { pv::log::set_quiet(quiet); });
  pv::cli::add_embed_command(app);

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
