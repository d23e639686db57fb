#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <thread>

#include <arpa/inet.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <openssl/evp.h>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/image.h>
#include <patchvec/inspector.h>
#include <patchvec/json.h>
#include <patchvec/log.h>
#include <patchvec/model.h>
#include <patchvec/model_registry.h>
#include <patchvec/publishing.h>
#include <patchvec/report_spool.h>
#include <patchvec/service.h>
#include <patchvec/store.h>
#include <patchvec/text.h>

#include "image/render.h"
#include "service/auth.h"
#include "service/http_server.h"
#include "service/metrics.h"
#include "service/origins.h"
#include "service/requests.h"
#include "service/slots.h"
#include "service/web_assets.h"
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

// One segment of a path pattern: "/v1/reports/*/image" matches "/v1/reports/12/image".
bool path_matches(std::string_view pattern, std::string_view path) {
  const auto star = pattern.find('*');
  if (star == std::string_view::npos) return path == pattern;
  const std::string_view head = pattern.substr(0, star), tail = pattern.substr(star + 1);
  if (path.size() <= head.size() + tail.size() || !path.starts_with(head) ||
      !path.ends_with(tail)) {
    return false;
  }
  const std::string_view segment =
      path.substr(head.size(), path.size() - head.size() - tail.size());
  return segment.find('/') == std::string_view::npos;
}

// The same pattern as the regular expression httplib routes by ('*' captured as matches[1]).
std::string path_regex(std::string_view pattern) {
  std::string regex;
  for (const char c : pattern) {
    if (c == '*') {
      regex += "([^/]+)";
    } else {
      if (c == '.') regex += '\\';
      regex += c;
    }
  }
  return regex;
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

// Text that is not UTF-8 (a store's old rows, a file name) is replaced, never a failure.
void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
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
  // The service's routes, in one table: what routing, permissions, the reserve connections and
  // the metrics labels check, and the handler that answers.
  struct Route {
    std::string method;
    std::string path;          // exact, or with one '*' for an {id} segment
    std::string label;         // for /metrics
    std::optional<Role> role;  // who may call it once tokens are required; nullopt: everyone
    bool health = false;       // served on reserve connections too
    std::function<void(Impl&, const httplib::Request&, httplib::Response&)> handle;
    // The body is JSON, sent as application/json: a type no page of another origin can send
    // without asking first (CORS preflight, which this service never grants).
    bool json_body = false;
  };

  ServiceOptions options;
  std::unique_ptr<ModelRegistry> registry;   // published models (no --models)
  std::optional<Inspector> inspector;        // the models and the store
  std::unique_ptr<ModelFollower> follower;   // keeps published models current (destroyed early)
  std::optional<ReportSpool> spool;          // reports waiting for the store
  std::optional<PredictionBatcher> batcher;  // runs every prediction (destroyed first)
  std::filesystem::path report_images_dir;
  std::optional<service::TokenFile> tokens;
  service::HostPolicy hosts;
  GuardedServer server;
  service::Metrics metrics;
  service::FairSlots inspection_slots;
  // The background threads (spool flusher, readiness checker) wait on these and stop together.
  std::thread spool_flusher;
  std::mutex background_mutex;
  std::condition_variable background_wakeup;
  bool stopping_background = false;
  std::atomic<long long> incidents = 0;
  // Readiness, checked by its own thread every second so that /healthz answers at once: what the
  // last check found, and when the check under way (if any) began.
  struct Readiness {
    bool ok = true;
    std::optional<std::chrono::steady_clock::time_point> checking_since;
  };
  std::mutex readiness_mutex;
  Readiness readiness;
  std::thread readiness_checker;
  const std::vector<Route> route_table = make_routes();

  explicit Impl(const ServiceOptions& o)
      : options(o),
        hosts(o.allowed_hosts, o.host),
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
    log::info("answering requests for host names: " + hosts.describe() + " (--allowed-hosts)");
    const ModelLoadOptions load{.threads = o.threads,
                                .batch_size = o.batching.max_batch,
                                .image_limits = o.image_limits,
                                .backbones = std::make_shared<BackboneCache>()};
    if (o.models_dir.empty()) {
      serve_published(o, load);
    } else {
      std::map<std::string, ServedModel> models;
      try {
        models = served_files(o.models_dir, load);
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (--models)");
      }
      inspector.emplace(std::move(models), open_store(o.store, o.models_dir / "store.pvs"));
    }
    batcher.emplace(o.batching);
    spool.emplace(data_dir(o.report_spool_dir, "report-spool"));
    report_images_dir = data_dir(o.report_images_dir, "report-images");
    for (const auto& entry : inspector->models()) {
      const std::string& category = entry.first;
      if (store().image_count(category) == 0) {
        log::warn("category " + category + " has no images in " + store().location() +
                  ": inspections will fail until it is indexed (patchvec index --model ...)");
      }
    }
    routes();
    // Last: a constructor that throws must not leave a thread running.
    spool_flusher = std::thread([this] { flush_spool_until_stopped(); });
    readiness_checker = std::thread([this] { check_readiness_until_stopped(); });
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
  void serve_published(const ServiceOptions& o, const ModelLoadOptions& load) {
    if (o.store.db.empty()) {
      throw Error(
          "no models: give --models FOLDER, or --db URL of a database with published "
          "models (patchvec publish)");
    }
    registry = ModelRegistry::open(o.store.db);
    const auto cache = o.model_cache_dir.empty() ? user_cache_dir("models") : o.model_cache_dir;
    inspector.emplace(load_published_models(*registry, cache, load), open_store(o.store));
    follower = std::make_unique<ModelFollower>(
        *registry, *inspector,
        FollowOptions{.cache_dir = cache,
                      .load = load,
                      .check_interval = std::chrono::seconds(o.model_check_seconds)});
  }

  ~Impl() {
    {
      const std::lock_guard lock(background_mutex);
      stopping_background = true;
    }
    background_wakeup.notify_all();
    if (spool_flusher.joinable()) spool_flusher.join();
    if (readiness_checker.joinable()) readiness_checker.join();
  }

  // Every second: can the store answer? Changes of state are logged once, with the details.
  void check_readiness_until_stopped() {
    std::unique_lock lock(background_mutex);
    do {
      lock.unlock();
      {
        const std::lock_guard guard(readiness_mutex);
        readiness.checking_since = std::chrono::steady_clock::now();
      }
      std::string problem;
      try {
        store().ping();
      } catch (const std::exception& e) {
        problem = e.what();
      }
      {
        const std::lock_guard guard(readiness_mutex);
        if (problem.empty() && !readiness.ok) log::info("ready again: " + store().location());
        if (!problem.empty() && readiness.ok) log::warn("not ready: " + problem);
        readiness = {.ok = problem.empty(), .checking_since = std::nullopt};
      }
      lock.lock();
    } while (!background_wakeup.wait_for(lock, std::chrono::seconds(1),
                                         [&] { return stopping_background; }));
  }

  // Every 2 s: the spooled reports to the store, once it takes them.
  void flush_spool_until_stopped() {
    std::unique_lock lock(background_mutex);
    while (!background_wakeup.wait_for(lock, std::chrono::seconds(2),
                                       [&] { return stopping_background; })) {
      lock.unlock();
      try {
        const std::size_t stored = spool->flush(store());
        if (stored > 0) {
          log::info("stored " + std::to_string(stored) + " spooled report(s) in " +
                    store().location());
        }
      } catch (const std::exception& e) {
        log::warn(std::string("flushing the report spool: ") + e.what());
      }
      lock.lock();
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

  VectorStore& store() const { return inspector->store(); }

  static std::vector<Route> make_routes() {
    constexpr Role kInspect = Role::kInspect;
    using Request = httplib::Request;
    using Response = httplib::Response;
    std::vector<Route> routes;
    for (const service::WebAsset& asset : service::web_assets()) {
      routes.push_back({"GET", asset.path, asset.path, std::nullopt, false,
                        [asset](Impl&, const Request&, Response& res) {
                          res.set_content(asset.body, asset.content_type);
                        }});
    }
    const auto json_route = [&](const char* method, const char* path, const char* label,
                                std::optional<Role> role, auto answer) {
      routes.push_back({method, path, label, role, false,
                        [answer](Impl& impl, const Request& req, Response& res) {
                          impl.guarded(res, [&] { send_json(res, 200, answer(impl, req)); });
                        }});
    };
    const auto png_route = [&](const char* path, const char* label, auto answer) {
      routes.push_back({"GET", path, label, kInspect, false,
                        [answer](Impl& impl, const Request& req, Response& res) {
                          impl.guarded(res, [&] {
                            const auto png = answer(impl, req.matches[1]);
                            res.set_content(reinterpret_cast<const char*>(png.data()), png.size(),
                                            "image/png");
                          });
                        }});
    };
    routes.push_back(
        {"GET", "/livez", "/livez", std::nullopt, true, [](Impl&, const Request&, Response& res) {
           send_json(res, 200, {{"status", "alive"}});
         }});
    routes.push_back({"GET", "/healthz", "/healthz", std::nullopt, true,
                      [](Impl& impl, const Request&, Response& res) {
                        const auto [status, body] = impl.health();
                        send_json(res, status, body);
                      }});
    routes.push_back({"GET", "/metrics", "/metrics", kInspect, true,
                      [](Impl& impl, const Request&, Response& res) {
                        const BatcherStats batches = impl.batcher->stats();
                        res.set_content(impl.metrics.prometheus_text(
                                            batches.batches, batches.images,
                                            static_cast<long long>(impl.spool->pending())),
                                        "text/plain; version=0.0.4");
                      }});
    json_route("GET", "/v1/categories", "/v1/categories", kInspect,
               [](Impl& impl, const Request&) { return impl.categories(); });
    json_route("POST", "/v1/inspect", "/v1/inspect", kInspect,
               [](Impl& impl, const Request& req) { return impl.inspect(req); });
    json_route("GET", "/v1/reports", "/v1/reports", kInspect,
               [](Impl& impl, const Request& req) { return impl.reports(req); });
    png_route("/v1/reports/*/image", "/v1/reports/{id}/image",
              [](Impl& impl, const std::string& id) { return impl.report_image(id); });
    json_route("POST", "/v1/reports/*/resolve", "/v1/reports/{id}/resolve", Role::kOperator,
               [](Impl& impl, const Request& req) { return impl.resolve(req, req.matches[1]); });
    routes.back().json_body = true;
    png_route("/v1/images/*", "/v1/images/{id}",
              [](Impl& impl, const std::string& id) { return impl.thumbnail(id); });
    return routes;
  }

  const Route* route_for(const std::string& method, const std::string& path) const {
    const std::string wanted = method == "HEAD" ? "GET" : method;
    for (const Route& route : route_table) {
      if (route.method == wanted && path_matches(route.path, path)) return &route;
    }
    return nullptr;
  }

  std::string allowed_methods(const std::string& path) const {
    std::string allowed;
    for (const Route& route : route_table) {
      if (!path_matches(route.path, path)) continue;
      if (!allowed.empty()) allowed += ", ";
      allowed += route.method;
    }
    return allowed;
  }

  // --- handlers ------------------------------------------------------------------------------

  std::shared_ptr<const Model> model_for(const httplib::Request& req) const {
    if (!req.has_param("category")) throw HttpError{400, "missing ?category="};
    const std::string category = req.get_param_value("category");
    return inspector->model(category);  // NotFoundError: 404
  }

  // A slot to decode and score an image in, first come first served; bounds the memory of
  // inspections at once.
  class Slot {
   public:
    explicit Slot(service::FairSlots& slots, int timeout_seconds) : slots_(slots) {
      if (!slots.acquire_for(std::chrono::seconds(timeout_seconds))) {
        throw HttpError{503, "busy: every inspection slot stayed taken; try again"};
      }
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { slots_.release(); }

   private:
    service::FairSlots& slots_;
  };

  Json inspect(const httplib::Request& req) {
    const auto start = std::chrono::steady_clock::now();
    // This request's model, to its end: a newer revision may be swapped in meanwhile.
    const std::shared_ptr<const Model> held = model_for(req);
    const Model& model = *held;
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
      // The header first: an image over the limits (its pixels, or what this model's tiles would
      // take of memory) is refused before it waits for a slot.
      model.backbone().check_image(read_image_header(upload.bytes, "in the request"),
                                   "in the request");
      const Slot slot(inspection_slots, options.request_timeout_seconds);
      PredictionBatcher::Announcement coming = batcher->announce(model);
      const Image image = decode_image(upload.bytes, "in the request", options.image_limits);
      prediction = batcher->predict(model, image, &coming);
      // The map over the whole image, pure colours: the page blends it with the original.
      const std::vector<float> normalized = model.normalize_map(prediction->map);
      const ModelInfo& info = model.info();
      const cv::Mat map =
          render::original_overlay(image, normalized, prediction->map.width, prediction->map.height,
                                   info.options.embedder.image_size,
                                   info.options.embedder.crop_size, kMapHeight, /*opacity=*/1.0);
      out["map_png"] = base64(png_bytes(map));
      out["image"] = {{"width", image.width}, {"height", image.height}};
    }
    InspectOptions inspect_options = options.inspect;
    inspect_options.keep_image = [&] { return keep_upload(upload.bytes); };
    inspect_options.spool = &*spool;
    const Inspection r = pv::inspect(model, store(), *prediction, name, inspect_options);
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
    for (const auto& [name, served] : inspector->models()) {
      Json category = json::model(served.model->info());
      category["sha256"] = served.sha256;
      category["published"] = nullptr;
      if (served.published) {
        category["published"] = {{"revision", served.published->revision},
                                 {"created", served.published->created}};
      }
      category["stored_images"] = store().image_count(name);
      out.push_back(std::move(category));
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
    for (const AnomalyReport& r : store().reports(query)) out.push_back(report_json(r));
    return out;
  }

  std::int64_t report_id(const std::string& text) const {
    const auto id = service::parse_id(text, "a report");
    if (!id) throw HttpError{404, "no report " + text};
    return *id;
  }

  std::vector<unsigned char> report_image(const std::string& id_text) const {
    const auto report = store().report(report_id(id_text));
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
    const ResolvedReport resolved = inspector->resolve(id, resolution);  // 404, 409
    Json out = report_json(resolved.report);
    out["image_id"] = resolved.image_id;
    return out;
  }

  std::vector<unsigned char> thumbnail(const std::string& id_text) const {
    const auto id = service::parse_id(id_text, "an image");
    const auto image = id ? store().image(*id) : std::nullopt;
    if (!image) throw HttpError{404, "no stored image " + id_text};
    try {
      return png_bytes(
          render::scaled_original(load_image(image->path, options.image_limits), kThumbnailHeight));
    } catch (const ImageError& e) {
      log::warn("thumbnail of stored image " + id_text + ": " + e.what());
      throw HttpError{404, "the picture of stored image " + id_text + " is unavailable"};
    }
  }

  // Readiness: the store answered its last check, and the check under way (if any) is not older
  // than kReadinessDeadline. Answered at once, whatever the store does.
  std::pair<int, Json> health() {
    constexpr auto kReadinessDeadline = std::chrono::seconds(3);
    bool ok = false;
    {
      const std::lock_guard guard(readiness_mutex);
      ok = readiness.ok &&
           (!readiness.checking_since ||
            std::chrono::steady_clock::now() - *readiness.checking_since < kReadinessDeadline);
    }
    return {ok ? 200 : 503,
            {{"status", ok ? "ok" : "unavailable"},
             {"categories", inspector->models().size()},
             {"store_kind", store().kind()},
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
    // Bytes are bytes: a path or parameter that is not clean text is refused, never echoed raw.
    if (const std::string_view problem = text_problem(req.path); !problem.empty()) {
      return refuse(400, "the request's path " + std::string(problem));
    }
    for (const auto& [key, value] : req.params) {
      const std::string_view problem =
          text_problem(key).empty() ? text_problem(value) : text_problem(key);
      if (!problem.empty()) {
        return refuse(400, "query parameter '" + printable(key, 40) + "' " + std::string(problem));
      }
    }
    if (const auto refusal = hosts.refuse_host(req)) return refuse(421, *refusal);
    const Route* route = route_for(req.method, req.path);
    if (route == nullptr) {
      const std::string allowed = allowed_methods(req.path);
      if (allowed.empty()) return refuse(404, "no such endpoint: " + printable(req.path, 200));
      res.set_header("Allow", allowed);
      return refuse(405, printable(req.method, 20) + " is not allowed on " +
                             printable(req.path, 200) + " (only " + allowed + ")");
    }
    const auto* connection = GuardedServer::connection();
    if (connection != nullptr && connection->reserve && !route->health) {
      res.set_header("Retry-After", "1");
      return refuse(connection->busy_status,
                    connection->busy_status == 429
                        ? "too many connections from " + connection->client + "; try again"
                        : "too many connections; try again");
    }
    if (req.method != "GET" && req.method != "HEAD") {
      if (const auto refusal = hosts.refuse_cross_site(req)) return refuse(403, *refusal);
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
      if (req.has_header("Transfer-Encoding")) {
        return refuse(411, "send a Content-Length (bodies in chunks are not taken)");
      }
      if (!req.has_header("Content-Length")) {
        return refuse(411, "send a Content-Length (the body's size in bytes)");
      }
      const std::string length = req.get_header_value("Content-Length");
      for (std::size_t i = 1; i < req.get_header_value_count("Content-Length"); ++i) {
        if (req.get_header_value("Content-Length", i) != length) {
          return refuse(400, "several different Content-Length headers");
        }
      }
      if (length.empty() || length.find_first_not_of("0123456789") != std::string::npos ||
          length.size() > 18) {
        return refuse(400, "bad Content-Length");
      }
      if (std::stoull(length) > options.max_body_bytes) {
        return refuse(413, "request body of " + length + " bytes; the limit is " +
                               std::to_string(options.max_body_bytes) + " (--max-body)");
      }
      if (std::stoull(length) == 0) {
        return refuse(400, route->json_body ? std::string("empty body: send a JSON object")
                                            : std::string("empty body: send the image bytes (") +
                                                  kSupportedImageFormats + ")");
      }
      if (route->json_body) {
        const std::string type = req.get_header_value("Content-Type");
        if (!(type == "application/json" || type.starts_with("application/json;"))) {
          return refuse(415, "send the body as Content-Type: application/json");
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
    for (const Route& route : route_table) {
      const auto handler = [this, &route](const httplib::Request& req, httplib::Response& res) {
        route.handle(*this, req, res);
      };
      if (route.method == "GET") {
        server.Get(path_regex(route.path), handler);
      } else {
        server.Post(path_regex(route.path), handler);
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
      const long long incident = ++incidents;
      log::warn("incident " + std::to_string(incident) + " (internal error) on " + req.path + ": " +
                message);
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
      if (res.status == 404) message = "no such endpoint: " + printable(req.path, 200);
      if (res.status == 400 && req.method == "POST") {
        message = "bad request: POST /v1/inspect takes the image as the body or as a form file";
      }
      send_json(res, res.status, {{"error", message}});
    });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const Route* route = route_for(req.method, req.path);
      metrics.count_request(route ? route->label.c_str() : "other", res.status);
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
