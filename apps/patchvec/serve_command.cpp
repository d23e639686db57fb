// patchvec serve: the inspection service (HTTP API and web page).
#include <csignal>
#include <cstdio>
#include <functional>
#include <thread>

#include <pthread.h>

#include <patchvec/log.h>
#include <patchvec/service.h>

#include "cli_common.h"
#include "commands.h"

namespace pv::cli {

void run_until_signal(const std::function<void()>& run, const std::function<void()>& stop) {
  // SIGINT/SIGTERM are taken by a thread of their own (sigwait), which calls `stop`; every other
  // thread, including those `run` starts, keeps them blocked. The caller blocked them already
  // (block_stop_signals()) when it started threads before this.
  const sigset_t signals = block_stop_signals();
  std::thread stopper([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    log::info("stopping");
    stop();
  });
  run();
  // Wakes the stopper if `run` ended first: SIGTERM is blocked and taken by its sigwait(), so
  // it ends that call, not the thread.
  pthread_kill(stopper.native_handle(), SIGTERM);  // NOLINT(bugprone-bad-signal-to-kill-thread)
  stopper.join();
}

sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void serve_until_signal(const ServiceOptions& options) {
  block_stop_signals();
  InspectionService service(options);
  const int port = service.bind();
  std::printf("PatchVec is serving on http://%s:%d/  (Ctrl-C stops it)\n", options.host.c_str(),
              port);
  std::fflush(stdout);
  run_until_signal([&] { service.serve(); }, [&] { service.stop(); });
}

void add_serve_command(CLI::App& app) {
  auto options = std::make_shared<ServiceOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "The inspection service: an HTTP API and a web page for operators");
  cmd->footer(R"(
Loads every <category>.pvm in --models once, or, with --db and no --models, each category's
newest model published in the database (patchvec publish), following new revisions while it runs;
images and reports live in --db (PostgreSQL + pgvector) or in --store (default <models>/store.pvs). Endpoints (docs/api.md): POST /v1/inspect?category=C,
GET /v1/categories, /v1/reports, /v1/images/{id}, /healthz (ready), /livez (alive), /metrics;
the page is at /.
Without --auth-tokens anyone who reaches the port may call it, so the service then listens on
this machine only (127.0.0.1); another --host needs --auth-tokens FILE, or --insecure.
Browsers' requests from pages of other origins may not change anything (403), and requests naming
a host the service was not told (--allowed-hosts) are refused (421): docs/api.md, "Browsers".
Examples:
  patchvec index --model models/*.pvm --data mvtec && patchvec serve --models models
  patchvec serve --models models --host 0.0.0.0 --auth-tokens /etc/patchvec/tokens
  patchvec publish --db $URL models/*.pvm && patchvec serve --db $URL)");
  cmd->add_option("--models", options->models_dir,
                  "Folder of .pvm models (without it: the models published in --db)");
  add_store_options(*cmd, options->store);
  cmd->add_option("--model-cache", options->model_cache_dir,
                  "Without --models: where published models are kept to be loaded "
                  "(default: $XDG_CACHE_HOME/patchvec/models)");
  cmd->add_option("--model-check-seconds", options->model_check_seconds,
                  "Without --models: how often the database is checked for new revisions besides "
                  "its notifications")
      ->capture_default_str();
  cmd->add_option("--report-images", options->report_images_dir,
                  "Folder for the images of anomaly reports, kept for the operators' decisions "
                  "(default: MODELS/report-images, or $XDG_DATA_HOME/patchvec/report-images)");
  cmd->add_option("--report-spool", options->report_spool_dir,
                  "Folder where reports wait, fsync'd, while the database has no primary; stored "
                  "once it has one (default: MODELS/report-spool, or "
                  "$XDG_DATA_HOME/patchvec/report-spool)");
  cmd->add_option("--host", options->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", options->port, "Port (0: any free one)")->capture_default_str();
  cmd->add_option("--auth-tokens", options->auth_tokens,
                  "File of 'TOKEN ROLE' lines (roles inspect, operator, admin): clients send "
                  "'Authorization: Bearer TOKEN'")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--insecure", options->insecure,
                "Allow a non-loopback --host without --auth-tokens (anyone may call it)");
  cmd->add_option("--allowed-hosts", options->allowed_hosts,
                  "Host names and addresses clients may reach the service by (the Host header; "
                  "others get 421, which stops DNS rebinding); '*' for any. Default: --host and "
                  "localhost, 127.0.0.1, ::1; any for a wildcard --host (0.0.0.0)")
      ->delimiter(',');
  cmd->add_option("--max-body", options->max_body_bytes, "Largest request body, bytes")
      ->capture_default_str();
  add_image_limit_option(*cmd, options->image_limits);
  cmd->add_option("--request-timeout", options->request_timeout_seconds,
                  "Seconds a client has to send a whole request (headers and body)")
      ->capture_default_str();
  cmd->add_option("--max-connections", options->max_connections, "Connections at once, in all")
      ->capture_default_str();
  cmd->add_option("--max-connections-per-client", options->max_connections_per_client,
                  "Connections at once from one address")
      ->capture_default_str();
  cmd->add_option("--max-inspections", options->max_concurrent_inspections,
                  "Images decoded and scored at once; more requests wait for a slot")
      ->capture_default_str();
  cmd->add_option("--threads", options->threads,
                  "Compute threads, shared by all requests (0 = one per core)");
  add_run_precision_option(*cmd, options->precision);
  add_search_option(*cmd, options->search);
  cmd->add_option("--max-batch", options->batching.max_batch,
                  "Concurrent images run through the network together")
      ->capture_default_str();
  cmd->add_option("--batch-wait-ms", options->batching.max_wait_ms,
                  "How long a batch waits for requests being read (announced) to join it; a lone "
                  "request never waits")
      ->capture_default_str();
  cmd->add_option("--min-similarity", options->inspect.min_similarity,
                  "Cosine similarity to the closest normal image for a normal verdict "
                  "(default: each model's calibrated rule)");
  cmd->callback([options] { serve_until_signal(*options); });
}

}  // namespace pv::cli
