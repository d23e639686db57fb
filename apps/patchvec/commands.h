// Each sub-command registers its options and its action on the top-level CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace pv::cli {

void add_embed_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_synth_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_store_commands(CLI::App& app);  // index, search, add-anomaly, reports, resolve
void add_update_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_station_command(CLI::App& app);   // station (docs/station.md)
void add_weights_command(CLI::App& app);   // weights list, fetch, verify
void add_import_command(CLI::App& app);    // import-anomalib
void add_publish_commands(CLI::App& app);  // publish, models

}  // namespace pv::cli
