#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <semaphore>

#include <arpa/inet.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <openssl/evp.h>

#include <patchvec/error.h>
#include <patchvec/image.h>
#include <patchvec/model.h>
#include <patchvec/service.h>
#include <patchvec/store.h>

#include "image/render.h"
#include "inspect/inspection_json.h"
#include "service/auth.h"
#include "service/http_server.h"
#include "service/metrics.h"
#include "service/requests.h"
#include "service/web_assets.h"
#include "util/files.h"
#include "util/log.h"
#include "util/sha256.h"

namespace pv {
namespace {

using Json = nlohmann::ordered_json;
using service::GuardedServer;
using service::HttpError;
using service::Role;

constexpr int kThumbnailHeight = 160;
constexpr int kMapHeight = 384;

std::string base64(const std::vector<unsigned char>& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::vector<unsigned char> png_bytes(const cv::Mat& picture) {
  std::vector<unsigned char> bytes;
  cv::imencode(".png", picture, bytes);
  return bytes;
}

// The service's routes: one table for routing checks, permissions and metrics labels.
struct Route {
  const char* method;
  const char* path;          // exact, or a prefix ending in '/' for {id} routes
  const char* label;         // for /metrics
  std::optional<Role> role;  // who may call it once tokens are required; nullopt: everyone
  bool health = false;       // served on reserve connections too
};

constexpr Role kInspect = Role::kInspect;
const Route kRoutes[] = {
    {"GET", "/", "/", std::nullopt},
    {"GET", "/app.js", "/app.js", std::nullopt},
    {"GET", "/app.css", "/app.css", std::nullopt},
    {"GET", "/livez", "/livez", std::nullopt, true},
    {"GET", "/healthz", "/healthz", std::nullopt, true},
    {"GET", "/metrics", "/metrics", kInspect, true},
    {"GET", "/v1/categories", "/v1/categories", kInspect},
    {"POST", "/v1/inspect", "/v1/inspect", kInspect},
    {"GET", "/v1/reports", "/v1/reports", kInspect},
    {"GET", "/v1/reports/*/image", "/v1/reports/{id}/image", kInspect},
    {"POST", "/v1/reports/*/resolve", "/v1/reports/{id}/resolve", Role::kOperator},
    {"GET", "/v1/images/", "/v1/images/{id}", kInspect},
};

bool matches(const Route& route, const std::string& path) {
  const std::string_view pattern = route.path;
  if (const auto star = pattern.find('*'); star != std::string_view::npos) {  // one segment
    const std::string_view head = pattern.substr(0, star), tail = pattern.substr(star + 1);
    if (path.size() <= head.size() + tail.size() || !path.starts_with(head) ||
        !path.ends_with(tail)) {
      return false;
    }
    const std::string_view segment =
        std::string_view(path).substr(head.size(), path.size() - head.size() - tail.size());
    return segment.find('/') == std::string_view::npos;
  }
  if (pattern.size() > 1 && pattern.ends_with('/')) {
    return path.size() > pattern.size() && path.starts_with(pattern) &&
           path.find('/', pattern.size()) == std::string::npos;
  }
  return path == pattern;
}

const Route* route_for(const std::string& method, const std::string& path) {
  const std::string wanted = method == "HEAD" ? "GET" : method;
  for (const Route& route : kRoutes) {
    if (route.method == wanted && matches(route, path)) return &route;
  }
  return nullptr;
}

std::string allowed_methods(const std::string& path) {
  std::string allowed;
  for (const Route& route : kRoutes) {
    if (matches(route, path)) allowed += (allowed.empty() ? "" : ", ") + std::string(route.method);
  }
  return allowed;
}

int status_of(const ImageError& e) {
  switch (e.kind()) {
    case ImageError::Kind::kNotAnImage:
      return 415;
    case ImageError::Kind::kTooLarge:
      return 413;
    case ImageError::Kind::kDamaged:
      return 422;
    case ImageError::Kind::kUnreadable:
      break;
  }
  return 400;
}

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, {{"error", message}});
}

// A body left unread (an early refusal) would be taken for the next request: close instead.
void close_connection_after(const httplib::Request& req, httplib::Response& res) {
  if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
    res.set_header("Connection", "close");
    if (auto* connection = GuardedServer::connection()) connection->close = true;
  }
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr address{};
  return ::inet_pton(AF_INET, host.c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

struct InspectionService::Impl {
  ServiceOptions options;
  std::map<std::string, Model> models;
  std::unique_ptr<VectorStore> store;
  std::filesystem::path report_images_dir;
  std::optional<service::TokenFile> tokens;
  GuardedServer server;
  service::Metrics metrics;
  std::counting_semaphore<> inspection_slots;
  std::atomic<long long> incidents = 0;
  std::atomic<int> store_was_ok = -1;  // for logging readiness changes once

  explicit Impl(const ServiceOptions& o)
      : options(o),
        server({.request_timeout_seconds = o.request_timeout_seconds,
                .max_connections = o.max_connections,
                .max_connections_per_client = o.max_connections_per_client}),
        inspection_slots(std::max(o.max_concurrent_inspections, 1)) {
    check_options(o);
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
    load_models(o);
    store = open_store({.db = o.db}, o.models_dir / "store.pvs");
    report_images_dir =
        o.report_images_dir.empty() ? o.models_dir / "report-images" : o.report_images_dir;
    for (const auto& [category, model] : models) {
      if (store->image_count(category) == 0) {
        log::warn("category " + category + " has no images in " + store->location() +
                  ": inspections will fail until it is indexed (patchvec index --model ...)");
      }
    }
    routes();
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
  }

  void load_models(const ServiceOptions& o) {
    std::error_code error;
    if (!std::filesystem::is_directory(o.models_dir, error)) {
      throw Error("models folder " + o.models_dir.string() + " does not exist (--models)");
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(o.models_dir)) {
      if (entry.path().extension() == ".pvm") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error("no .pvm model in " + o.models_dir.string() + " (--models)");
    for (const auto& file : files) {
      Model model = Model::load(
          file, {.threads = o.threads, .batch_size = 1, .image_limits = o.image_limits});
      const std::string category = model.info().category;
      if (models.contains(category)) {
        throw Error("two models for category " + category + " in " + o.models_dir.string() + " (" +
                    file.filename().string() + " is the second)");
      }
      log::info("serving " + category + " from " + file.string());
      models.emplace(category, std::move(model));
    }
  }

  // --- handlers ------------------------------------------------------------------------------

  const Model& model_for(const httplib::Request& req) const {
    if (!req.has_param("category")) throw HttpError{400, "missing ?category="};
    const std::string category = req.get_param_value("category");
    const auto it = models.find(category);
    if (it == models.end()) throw HttpError{404, "unknown category '" + category + "'"};
    return it->second;
  }

  // A slot to decode and score an image in; bounds the memory and CPU of inspections at once.
  class Slot {
   public:
    explicit Slot(std::counting_semaphore<>& slots, int timeout_seconds) : slots_(slots) {
      if (!slots.try_acquire_for(std::chrono::seconds(timeout_seconds))) {
        throw HttpError{503, "busy: every inspection slot stayed taken; try again"};
      }
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { slots_.release(); }

   private:
    std::counting_semaphore<>& slots_;
  };

  Json inspect(const httplib::Request& req) {
    const auto start = std::chrono::steady_clock::now();
    const Model& model = model_for(req);
    const service::Upload upload = service::upload_of(req);
    std::string name = "upload";
    if (req.has_param("name")) {
      name = req.get_param_value("name");
      service::check_name(name);
    } else if (!upload.filename.empty()) {
      try {
        service::check_name(upload.filename);
        name = upload.filename;
      } catch (const HttpError&) {  // an odd file name is no reason to refuse the image
      }
    }
    Json out;
    std::optional<Prediction> prediction;
    {
      // The header first: an image over the limits is refused before it waits for a slot.
      check_limits(read_image_header(upload.bytes, "in the request"), options.image_limits,
                   "in the request");
      const Slot slot(inspection_slots, options.request_timeout_seconds);
      const Image image = decode_image(upload.bytes, "in the request", options.image_limits);
      prediction = model.predict(image);
      // The map over the whole image, pure colours: the page blends it with the original.
      const std::vector<float> normalized = model.normalize_map(prediction->map);
      const ModelInfo& info = model.info();
      const cv::Mat map =
          render::original_overlay(image, normalized, prediction->map.width, prediction->map.height,
                                   info.image_size, info.crop_size, kMapHeight, /*opacity=*/1.0);
      out["map_png"] = base64(png_bytes(map));
      out["image"] = {{"width", image.width}, {"height", image.height}};
    }
    InspectOptions inspect_options = options.inspect;
    inspect_options.keep_image = [&] { return keep_upload(upload.bytes); };
    const Inspection r = pv::inspect(model, *store, *prediction, name, inspect_options);
    if (r.report_id) metrics.count_report();
    metrics.observe_inspect(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    Json result = json::inspection(r);
    with_thumbnails(result["matches"]);
    for (auto& [key, value] : out.items()) result[key] = value;
    return result;
  }

  // The bytes of a reported upload, kept for the operator's decision: <reports dir>/<sha256>.
  // Written atomically; the same image twice is one file.
  std::string keep_upload(std::span<const std::byte> bytes) const {
    const auto path = report_images_dir / sha256_hex(bytes);
    std::error_code error;
    if (!std::filesystem::exists(path, error)) {
      std::filesystem::create_directories(report_images_dir);
      AtomicFile file(path);
      file.write(bytes);
      file.commit();
    }
    return path.string();
  }

  static void with_thumbnails(Json& matches) {
    for (Json& m : matches)
      m["thumbnail"] = "/v1/images/" + std::to_string(m["id"].get<std::int64_t>());
  }

  Json categories() const {
    Json out = Json::array();
    for (const auto& [name, model] : models) {
      const ModelInfo& info = model.info();
      Json thresholds;
      if (info.thresholds) {
        thresholds = {{"image", info.thresholds->image},
                      {"pixel", info.thresholds->pixel},
                      {"source", info.thresholds->source}};
      }
      out.push_back({{"category", name},
                     {"backbone", info.backbone.backbone},
                     {"pretrained", info.pretrained},
                     {"bank_size", info.bank_size},
                     {"train_images", info.train_images},
                     {"created", info.created},
                     {"thresholds", thresholds},
                     {"stored_images", store->image_count(name)}});
    }
    return out;
  }

  static Json report_json(const AnomalyReport& r) {
    Json report = json::report(r);
    with_thumbnails(report["matches"]);
    report["image_url"] = "/v1/reports/" + std::to_string(r.id) + "/image";
    return report;
  }

  Json reports(const httplib::Request& req) const {
    ReportQuery query;
    if (req.has_param("category")) query.category = req.get_param_value("category");
    if (req.has_param("status")) {
      query.status = req.get_param_value("status");
      if (query.status != "open" && query.status != "resolved") {
        throw HttpError{400, "status must be open or resolved"};
      }
    }
    if (req.has_param("limit")) {
      query.limit = static_cast<std::size_t>(
          service::parse_number(req.get_param_value("limit"), 1, 1000, "limit"));
    }
    Json out = Json::array();
    for (const AnomalyReport& r : store->reports(query)) out.push_back(report_json(r));
    return out;
  }

  std::int64_t report_id(const std::string& text) const {
    const auto id = service::parse_id(text);
    if (!id) throw HttpError{404, "no report " + text};
    return *id;
  }

  std::vector<unsigned char> report_image(const std::string& id_text) const {
    const auto report = store->report(report_id(id_text));
    if (!report) throw HttpError{404, "no report " + id_text};
    const std::string file = report->image.empty() ? report->path : report->image;
    try {
      return png_bytes(render::scaled_original(load_image(file, options.image_limits), kMapHeight));
    } catch (const ImageError& e) {
      log::warn("image of report " + id_text + ": " + e.what());
      throw HttpError{404, "the image of report " + id_text + " is unavailable"};
    }
  }

  // POST /v1/reports/{id}/resolve {"resolution": "false_alarm"|"defect", "defect", "note"}
  Json resolve(const httplib::Request& req, const std::string& id_text) {
    const std::int64_t id = report_id(id_text);
    ReportResolution resolution;
    try {
      const auto body = nlohmann::json::parse(req.body);
      if (!body.is_object()) throw HttpError{400, "send a JSON object"};
      const auto text = [&](const char* key) {
        if (!body.contains(key) || body.at(key).is_null()) return std::string();
        if (!body.at(key).is_string()) throw HttpError{400, std::string(key) + " must be text"};
        return body.at(key).get<std::string>();
      };
      resolution = {.resolution = text("resolution"),
                    .defect = text("defect"),
                    .note = text("note"),
                    .by = text("by")};
    } catch (const nlohmann::json::exception&) {
      throw HttpError{400,
                      "the body is not JSON: send {\"resolution\": \"false_alarm\"} or "
                      "{\"resolution\": \"defect\", \"defect\": \"crack\"}"};
    }
    // With tokens the token says who decides; without, the client may say (else its address).
    if (const auto* connection = service::GuardedServer::connection()) {
      if (tokens) {
        resolution.by = tokens->caller_of(req.get_header_value("Authorization"))->name;
      } else if (resolution.by.empty()) {
        resolution.by = "operator at " + connection->client;
      }
    }
    try {
      check_resolution(resolution);
    } catch (const Error& e) {
      throw HttpError{400, e.what()};
    }
    const auto report = store->report(id);
    if (!report) throw HttpError{404, "no report " + id_text};
    const auto model = models.find(report->category);
    if (model == models.end()) {
      throw HttpError{409, "report " + id_text + " is of category " + report->category +
                               ", which this service has no model for"};
    }
    const ResolvedReport resolved = resolve_report(model->second, *store, id, resolution);
    Json out = report_json(resolved.report);
    out["image_id"] = resolved.image_id;
    return out;
  }

  std::vector<unsigned char> thumbnail(const std::string& id_text) const {
    const auto id = service::parse_id(id_text);
    const auto image = id ? store->image(*id) : std::nullopt;
    if (!image) throw HttpError{404, "no stored image " + id_text};
    try {
      return png_bytes(
          render::scaled_original(load_image(image->path, options.image_limits), kThumbnailHeight));
    } catch (const ImageError& e) {
      log::warn("thumbnail of stored image " + id_text + ": " + e.what());
      throw HttpError{404, "the picture of stored image " + id_text + " is unavailable"};
    }
  }

  // Readiness: the store answers. Changes of state are logged once, with the details.
  std::pair<int, Json> health() {
    bool ok = true;
    try {
      store->ping();
    } catch (const Error& e) {
      ok = false;
      if (store_was_ok.exchange(0) != 0) log::warn("not ready: " + std::string(e.what()));
    }
    if (ok && store_was_ok.exchange(1) == 0) log::info("ready again: " + store->location());
    return {ok ? 200 : 503,
            {{"status", ok ? "ok" : "unavailable"},
             {"categories", models.size()},
             {"store_kind", store->kind()},
             {"store_ok", ok}}};
  }

  // Runs `handler`; turns refusals, unreadable images and failures into JSON errors. Failures of
  // the store or a model are logged with their details and answered without them (they name
  // hosts, users and files).
  template <typename Handler>
  void guarded(httplib::Response& res, Handler handler) {
    try {
      handler();
    } catch (const HttpError& e) {
      send_error(res, e.status, e.message);
    } catch (const ImageError& e) {
      send_error(res, status_of(e), e.what());
    } catch (const NotFoundError& e) {
      send_error(res, 404, e.what());
    } catch (const ConflictError& e) {
      send_error(res, 409, e.what());
    } catch (const Error& e) {
      const long long incident = ++incidents;
      log::warn("incident " + std::to_string(incident) + ": " + e.what());
      res.set_header("Retry-After", "5");
      send_json(res, 503,
                {{"error",
                  "the service cannot answer now: its store or model failed "
                  "(the details are in its log, incident " +
                      std::to_string(incident) + ")"},
                 {"incident", incident}});
    }
  }

  // Before the body is read: the route, the method, the token, the connection's kind, the body's
  // announced size. Anything refused here never costs a body read.
  httplib::Server::HandlerResponse admit(const httplib::Request& req, httplib::Response& res) {
    const auto refuse = [&](int status, const std::string& message) {
      close_connection_after(req, res);
      send_error(res, status, message);
      return httplib::Server::HandlerResponse::Handled;
    };
    const Route* route = route_for(req.method, req.path);
    if (route == nullptr) {
      const std::string allowed = allowed_methods(req.path);
      if (allowed.empty()) return refuse(404, "no such endpoint: " + req.path);
      res.set_header("Allow", allowed);
      return refuse(405, req.method + " is not allowed on " + req.path + " (only " + allowed + ")");
    }
    const auto* connection = GuardedServer::connection();
    if (connection != nullptr && connection->reserve && !route->health) {
      res.set_header("Retry-After", "1");
      return refuse(connection->busy_status,
                    connection->busy_status == 429
                        ? "too many connections from " + connection->client + "; try again"
                        : "too many connections; try again");
    }
    if (tokens && route->role) {
      const auto caller = tokens->caller_of(req.get_header_value("Authorization"));
      if (!caller) {
        res.set_header("WWW-Authenticate", "Bearer realm=\"patchvec\"");
        return refuse(401, "a token is needed: send 'Authorization: Bearer <token>'");
      }
      if (static_cast<int>(caller->role) < static_cast<int>(*route->role)) {
        return refuse(403, std::string("this token's role (") + service::role_name(caller->role) +
                               ") may not call " + route->label + " (it needs " +
                               service::role_name(*route->role) + ")");
      }
    }
    if (req.method == "POST") {
      const bool chunked = req.get_header_value("Transfer-Encoding") == "chunked";
      if (!req.has_header("Content-Length") && !chunked) {
        return refuse(411, "send a Content-Length (the image's size in bytes)");
      }
      const std::string length = req.get_header_value("Content-Length");
      if (!chunked) {
        if (length.empty() || length.find_first_not_of("0123456789") != std::string::npos ||
            length.size() > 18) {
          return refuse(400, "bad Content-Length");
        }
        if (std::stoull(length) > options.max_body_bytes) {
          return refuse(413, "request body of " + length + " bytes; the limit is " +
                                 std::to_string(options.max_body_bytes) + " (--max-body)");
        }
        if (length == "0" || std::stoull(length) == 0) {
          return refuse(400, std::string("empty body: send the image bytes (") +
                                 kSupportedImageFormats + ")");
        }
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  void routes() {
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
    server.set_pre_routing_handler(
        [this](const httplib::Request& req, httplib::Response& res) { return admit(req, res); });
    for (const service::WebAsset& asset : service::web_assets()) {
      server.Get(asset.path, [asset](const httplib::Request&, httplib::Response& res) {
        res.set_content(asset.body, asset.content_type);
      });
    }
    server.Get("/livez", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"status", "alive"}});
    });
    server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      const auto [status, body] = health();
      send_json(res, status, body);
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.prometheus_text(), "text/plain; version=0.0.4");
    });
    server.Get("/v1/categories", [this](const httplib::Request&, httplib::Response& res) {
      guarded(res, [&] { send_json(res, 200, categories()); });
    });
    server.Post("/v1/inspect", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { send_json(res, 200, inspect(req)); });
    });
    server.Get("/v1/reports", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { send_json(res, 200, reports(req)); });
    });
    server.Get(R"(/v1/reports/([^/]+)/image)", [this](const httplib::Request& req,
                                                      httplib::Response& res) {
      guarded(res, [&] {
        const auto png = report_image(req.matches[1]);
        res.set_content(reinterpret_cast<const char*>(png.data()), png.size(), "image/png");
      });
    });
    server.Post(R"(/v1/reports/([^/]+)/resolve)",
                [this](const httplib::Request& req, httplib::Response& res) {
                  guarded(res, [&] { send_json(res, 200, resolve(req, req.matches[1])); });
                });
    server.Get(
        R"(/v1/images/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
          guarded(res, [&] {
            const auto png = thumbnail(req.matches[1]);
            res.set_content(reinterpret_cast<const char*>(png.data()), png.size(), "image/png");
          });
        });
    // Whatever escapes (a bug): a 500 with JSON, never a dropped connection; details to the log.
    server.set_exception_handler(
        [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr failure) {
          std::string message = "unknown exception";
          try {
            std::rethrow_exception(failure);
          } catch (const std::exception& e) {
            message = e.what();
          } catch (...) {
          }
          const long long incident = ++incidents;
          log::warn("incident " + std::to_string(incident) + " (internal error) on " + req.path +
                    ": " + message);
          send_json(res, 500,
                    {{"error", "internal error (incident " + std::to_string(incident) + ")"},
                     {"incident", incident}});
        });
    // Statuses httplib sets itself (a request it could not read, a body over the limit): JSON too.
    server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
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
      if (res.status == 404) message = "no such endpoint: " + req.path;
      if (res.status == 400 && req.method == "POST") {
        message = "bad request: POST /v1/inspect takes the image as the body or as a form file";
      }
      res.set_content(Json({{"error", message}}).dump(), "application/json");
    });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const Route* route = route_for(req.method, req.path);
      metrics.count_request(route ? route->label : "other", res.status);
    });
  }
};

InspectionService::InspectionService(const ServiceOptions& options)
    : impl_(std::make_unique<Impl>(options)) {}
InspectionService::~InspectionService() = default;

int InspectionService::bind() {
  const ServiceOptions& o = impl_->options;
  const int port = o.port == 0 ? impl_->server.bind_to_any_port(o.host)
                               : (impl_->server.bind_to_port(o.host, o.port) ? o.port : -1);
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
