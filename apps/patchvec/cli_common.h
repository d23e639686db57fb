// Options and output helpers shared by the sub-commands.
#pragma once

#include <csignal>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <patchvec/embedder.h>
#include <patchvec/evaluation.h>
#include <patchvec/inspection.h>
#include <patchvec/json.h>
#include <patchvec/model.h>
#include <patchvec/pictures.h>
#include <patchvec/service.h>
#include <patchvec/store.h>

namespace pv::cli {

// --backbone, --weights, --seed, --image-size, --crop-size, --batch-size, --threads.
void add_embedder_options(CLI::App& command, EmbedderOptions& options);

// --tile, --tile-overlap, --tile-scale for training.
void add_tiling_options(CLI::App& command, TilingOptions& options);
// The same for commands that load a model: each changes the model's own when given.
void add_tiling_override_options(CLI::App& command, TilingOverride& options);

// --max-pixels: the largest image, in pixels, a command decodes.
void add_image_limit_option(CLI::App& command, ImageLimits& limits);

// --weights (moved since training), --threads, --batch-size, --max-pixels, --precision,
// --search for commands that load a model.
void add_model_load_options(CLI::App& command, ModelLoadOptions& options);

// --precision for commands that load a model: its own (default), fp32, or auto (its own where
// this CPU runs it natively, else fp32, silently).
void add_run_precision_option(CLI::App& command, std::optional<Precision>& precision);

// --search: how predictions search the memory bank (exact, shortlist or auto).
void add_search_option(CLI::App& command, SearchMethod& method);

// One line when `model` searches its bank through the shortlist (image scores exact, maps may
// differ slightly); empty with the exact search.
std::string search_line(const Model& model);

// One line about the precision `model` runs in, for commands that predict: empty for a float32
// model run in fp32; else its trained precision, the run's, and the recorded agreement.
std::string precision_line(const Model& model);

// --db, --store, --exact: which vector store (PostgreSQL + pgvector, or the embedded one).
void add_store_options(CLI::App& command, StoreLocation& location);

// The embedded store's default file: store.pvs beside `model`.
std::filesystem::path store_beside(const std::filesystem::path& model);

// Writes `json` to `path` ("-" = stdout), atomically for files.
void write_json(const std::string& path, const nlohmann::ordered_json& json);

// The per-category table of the PatchCore paper: category, image AUROC, pixel AUROC, PRO.
void print_table(std::FILE* out, const std::vector<EvaluationReport>& reports);

// Where human-readable lines go: stderr when stdout carries JSON ("--json -"), else stdout.
std::FILE* human_output(const std::string& json_target);

// The two operating points of an evaluation (the thresholds in use, F1-optimal): false-alarm and
// detection rates on the test split (json::operating_points() in JSON).
void print_operating_points(std::FILE* out, const EvaluationReport& report);

// An inspection as the seed printed it: the verdict, then the similar images or the closest known
// defects. `truth` (the real label, when known) and `base` (paths are shown relative to it) may be
// empty.
void print_inspection(std::FILE* out, const Inspection& inspection, const std::string& truth,
                      const std::filesystem::path& base);

// Runs the inspection service until SIGINT or SIGTERM (serve_command.cpp).
void serve_until_signal(const ServiceOptions& options);

// Blocks SIGINT and SIGTERM on the calling thread (and the threads it starts from now on);
// returns the set. Call before starting threads that must not take them.
sigset_t block_stop_signals();
// Runs `run` on the calling thread; the first SIGINT or SIGTERM calls `stop` (once), which makes
// `run` return.
void run_until_signal(const std::function<void()>& run, const std::function<void()>& stop);

}  // namespace pv::cli
