// The service's lifecycle: loading the models and the store, the server's set-up from the route
// table, the background threads, and start and stop. Requests go through admission.cpp, then the
// handler their route names (handlers.cpp).
#include <algorithm>
#include <map>
#include <optional>

#include <arpa/inet.h>
#include <httplib.h>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/inspector.h>
#include <patchvec/log.h>
#include <patchvec/model.h>
#include <patchvec/model_registry.h>
#include <patchvec/publishing.h>
#include <patchvec/service.h>
#include <patchvec/store.h>
#include <patchvec/text.h>

#include "service/admission.h"
#include "service/auth.h"
#include "service/background.h"
#include "service/handlers.h"
#include "service/http_server.h"
#include "service/metrics.h"
#include "service/origins.h"
#include "service/routes.h"
#include "service/slots.h"
#include "util/sha256.h"

namespace pv {
namespace {

using service::GuardedServer;

}  // namespace

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr address{};
  return ::inet_pton(AF_INET, host.c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

struct InspectionService::Impl {
  ServiceOptions options;
  std::unique_ptr<ModelRegistry> registry;   // published models (no --models)
  std::optional<Inspector> owned_inspector;  // unless the caller gave one
  Inspector* inspector = nullptr;            // the models, the store, batching and the spool
  std::unique_ptr<ModelFollower> follower;   // keeps published models current (destroyed early)
  std::optional<service::TokenFile> tokens;
  service::HostPolicy hosts;
  service::RouteTable routes;
  GuardedServer server;
  service::Metrics metrics;
  service::FairSlots inspection_slots;
  std::optional<service::Handlers> handlers;
  std::unique_ptr<service::Background> background;  // last: its threads stop first

  Impl(const ServiceOptions& o, Inspector* given, const StationView* station)
      : options(o),
        inspector(given),
        hosts(o.allowed_hosts, o.host),
        server({.request_timeout_seconds = o.request_timeout_seconds,
                .max_connections = o.max_connections,
                .max_connections_per_client = o.max_connections_per_client}),
        inspection_slots(std::max(o.max_concurrent_inspections, 1)) {
    check_options(o);
    load_tokens(o);
    log::info("answering requests for host names: " + hosts.describe() + " (--allowed-hosts)");
    if (inspector == nullptr) load_inspector(o);
    for (const auto& entry : inspector->models()) {
      const std::string& category = entry.first;
      if (inspector->store().image_count(category) == 0) {
        log::warn("category " + category + " has no images in " + inspector->store().location() +
                  ": verdicts come from the model alone, without similar images, until it is "
                  "indexed (patchvec index --model ...)");
      }
    }
    handlers.emplace(
        service::HandlerContext{.options = options,
                                .inspector = *inspector,
                                .tokens = tokens ? &*tokens : nullptr,
                                .metrics = metrics,
                                .inspection_slots = inspection_slots,
                                .ready = [this] { return background && background->ready(); },
                                .station = station});
    install_routes();
    // Last: a constructor that throws must not leave a thread running.
    background = std::make_unique<service::Background>(*inspector);
  }

  // The models (--models, or those published in --db) and the store, as the options say.
  void load_inspector(const ServiceOptions& o) {
    const ModelLoadOptions load{.threads = o.threads,
                                .batch_size = o.batching.max_batch,
                                .image_limits = o.image_limits,
                                .backbones = std::make_shared<BackboneCache>(),
                                .precision = o.precision,
                                .search = o.search};
    const InspectorOptions inspecting{
        .batching = o.batching,
        .report_images_dir = data_dir(o.report_images_dir, "report-images"),
        .report_spool_dir = data_dir(o.report_spool_dir, "report-spool")};
    if (o.models_dir.empty()) {
      serve_published(o, load, inspecting);
    } else {
      std::map<std::string, ServedModel> models;
      try {
        models = served_files(o.models_dir, load);
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (--models)");
      }
      inspector = &owned_inspector.emplace(
          std::move(models), open_store(o.store, o.models_dir / "store.pvs"), inspecting);
    }
  }

  static void check_options(const ServiceOptions& o) {
    const auto positive = [](long long value, const char* option) {
      if (value <= 0) throw Error(std::string(option) + " must be positive");
    };
    positive(static_cast<long long>(o.max_body_bytes), "--max-body");
    positive(o.image_limits.max_pixels, "--max-pixels");
    positive(o.request_timeout_seconds, "--request-timeout");
    positive(o.max_connections, "--max-connections");
    positive(o.max_connections_per_client, "--max-connections-per-client");
    positive(o.max_concurrent_inspections, "--max-inspections");
    positive(o.model_check_seconds, "--model-check-seconds");
  }

  // Tokens, or no authentication on a loopback address (elsewhere only with --insecure).
  void load_tokens(const ServiceOptions& o) {
    if (!o.auth_tokens.empty()) {
      tokens = service::TokenFile::load(o.auth_tokens);
      log::info("authentication: " + std::to_string(tokens->size()) + " tokens from " +
                o.auth_tokens.string());
    } else if (!is_loopback_host(o.host)) {
      if (!o.insecure) {
        throw Error("--host " + o.host +
                    " without --auth-tokens: anyone who reaches this address could inspect "
                    "images and read reports. Give --auth-tokens FILE (docs/api.md), or "
                    "--insecure to serve without authentication anyway");
      }
      log::warn("serving " + o.host + " without authentication (--insecure)");
    } else {
      log::info("no authentication (--auth-tokens): serving this machine only (" + o.host + ")");
    }
  }

  // `given`, else `name` beside the models (--models), else in the user's data folder.
  std::filesystem::path data_dir(const std::filesystem::path& given, const char* name) const {
    if (!given.empty()) return given;
    return options.models_dir.empty() ? user_data_dir(name) : options.models_dir / name;
  }

  // Every *.pvm of `folder`, with its file's SHA-256.
  static std::map<std::string, ServedModel> served_files(const std::filesystem::path& folder,
                                                         const ModelLoadOptions& load) {
    std::map<std::string, ServedModel> out;
    for (auto& [category, model] : load_models(folder, load)) {
      out.emplace(category, ServedModel{.model = std::make_shared<const Model>(std::move(model)),
                                        .sha256 = sha256_file_hex(folder / (category + ".pvm"))});
    }
    return out;
  }

  // No --models: the newest published revisions in the database, followed from now on.
  void serve_published(const ServiceOptions& o, const ModelLoadOptions& load,
                       const InspectorOptions& inspecting) {
    if (o.store.db.empty()) {
      throw Error(
          "no models: give --models FOLDER, or --db URL of a database with published "
          "models (patchvec publish)");
    }
    registry = ModelRegistry::open(o.store.db);
    const auto cache = o.model_cache_dir.empty() ? user_cache_dir("models") : o.model_cache_dir;
    inspector = &owned_inspector.emplace(load_published_models(*registry, cache, load),
                                         open_store(o.store), inspecting);
    follower = std::make_unique<ModelFollower>(
        *registry, *inspector,
        FollowOptions{.cache_dir = cache,
                      .load = load,
                      .check_interval = std::chrono::seconds(o.model_check_seconds)});
  }

  // The route table into the server, with admission before routing and JSON for every error.
  void install_routes() {
    server.set_payload_max_length(options.max_body_bytes);
    server.set_read_timeout(options.request_timeout_seconds, 0);
    server.set_write_timeout(options.request_timeout_seconds, 0);
    server.set_default_headers({
        {"Content-Security-Policy",
         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
         "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"X-Frame-Options", "DENY"},
        {"Cache-Control", "no-store"},
    });
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return service::admit({.routes = routes,
                             .hosts = hosts,
                             .tokens = tokens ? &*tokens : nullptr,
                             .max_body_bytes = options.max_body_bytes},
                            req, res);
    });
    for (const service::Route& route : routes.routes()) {
      const auto handler = [this, &route](const httplib::Request& req, httplib::Response& res) {
        route.handle(*handlers, req, res);
      };
      if (route.method == "GET") {
        server.Get(service::path_regex(route.path), handler);
      } else {
        server.Post(service::path_regex(route.path), handler);
      }
    }
    // Whatever escapes (a bug): a 500 with JSON, never a dropped connection; details to the log.
    server.set_exception_handler([this](const httplib::Request& req, httplib::Response& res,
                                        const std::exception_ptr& failure) {
      std::string message = "unknown exception";
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        message = e.what();
      } catch (...) {
      }
      const long long incident = handlers->next_incident();
      log::warn("incident " + std::to_string(incident) + " (internal error) on " + req.path + ": " +
                message);
      service::send_json(res, 500,
                         {{"error", "internal error (incident " + std::to_string(incident) + ")"},
                          {"incident", incident}});
    });
    server.set_error_handler(answer_httplib_error);
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const service::Route* route = routes.find(req.method, req.path);
      metrics.count_request(route ? route->label.c_str() : "other", res.status);
    });
  }

  // Statuses httplib sets itself (a request it could not read, a body over the limit): JSON too.
  static void answer_httplib_error(const httplib::Request& req, httplib::Response& res) {
    const auto* connection = GuardedServer::connection();
    if (connection != nullptr && connection->deadline_passed) {
      res.status = 408;
      res.set_header("Connection", "close");
      res.body.clear();
    }
    if (!res.body.empty()) return;
    std::string message = "bad request";
    if (res.status == 408) message = "the request did not arrive in time (--request-timeout)";
    if (res.status == 413) message = "request body too large (--max-body)";
    if (res.status == 414) message = "request line too long";
    if (res.status == 404) message = "no such endpoint: " + printable(req.path, 200);
    if (res.status == 400 && req.method == "POST") {
      message = "bad request: POST /v1/inspect takes the image as the body or as a form file";
    }
    service::send_json(res, res.status, {{"error", message}});
  }
};

InspectionService::InspectionService(const ServiceOptions& options)
    : impl_(std::make_unique<Impl>(options, nullptr, nullptr)) {}
InspectionService::InspectionService(const ServiceOptions& options, Inspector& inspector,
                                     const StationView* station)
    : impl_(std::make_unique<Impl>(options, &inspector, station)) {}
InspectionService::~InspectionService() = default;

int InspectionService::bind() {
  const ServiceOptions& o = impl_->options;
  const int port = impl_->server.bind(o.host, o.port);
  if (port < 0) {
    throw Error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                " (--port): in use or not allowed");
  }
  return port;
}

void InspectionService::serve() {
  impl_->server.listen_after_bind();
}

void InspectionService::stop() {
  impl_->server.halt();
}

void InspectionService::serve_connection(int fd) {
  impl_->server.serve_socket(fd);
}

}  // namespace pv
