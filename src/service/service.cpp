#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

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
#include "service/metrics.h"
#include "util/log.h"

namespace pv {

const char* web_page();  // web/index.html, compiled in (web_page.cpp)

namespace {

using Json = nlohmann::ordered_json;

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

// A client error with its HTTP status.
struct HttpError {
  int status;
  std::string message;
};

std::string route_of(const std::string& path) {
  if (path.rfind("/v1/images/", 0) == 0) return "/v1/images/{id}";
  for (const char* known :
       {"/", "/healthz", "/metrics", "/v1/categories", "/v1/inspect", "/v1/reports"}) {
    if (path == known) return known;
  }
  return "other";
}

}  // namespace

struct InspectionService::Impl {
  ServiceOptions options;
  std::map<std::string, Model> models;
  std::unique_ptr<VectorStore> store;
  httplib::Server server;
  service::Metrics metrics;

  explicit Impl(const ServiceOptions& o) : options(o) {
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
      Model model = Model::load(file, {.threads = o.threads, .batch_size = 1});
      const std::string category = model.info().category;
      log::info("serving " + category + " from " + file.string());
      models.emplace(category, std::move(model));
    }
    store =
        o.db.empty() ? open_embedded_store(o.models_dir / "store.pvs") : open_postgres_store(o.db);
    routes();
  }

  const Model& model_for(const httplib::Request& req) const {
    if (!req.has_param("category")) throw HttpError{400, "missing ?category="};
    const std::string category = req.get_param_value("category");
    const auto it = models.find(category);
    if (it == models.end()) throw HttpError{404, "unknown category '" + category + "'"};
    return it->second;
  }

  Image decode_body(const httplib::Request& req) const {
    if (req.body.empty()) throw HttpError{400, "empty body: send the image bytes (PNG or JPEG)"};
    const auto bytes = std::as_bytes(std::span(req.body.data(), req.body.size()));
    const auto size = peek_image_size(bytes);
    if (!size) throw HttpError{415, "not a PNG or JPEG image"};
    const int side = options.max_image_side;
    if (size->width > side || size->height > side || size->width < 1 || size->height < 1) {
      throw HttpError{413, "image is " + std::to_string(size->width) + "x" +
                               std::to_string(size->height) + " pixels; the limit is " +
                               std::to_string(side) + " per side"};
    }
    try {
      return decode_image(bytes, "in the request body");
    } catch (const Error& e) {
      throw HttpError{400, e.what()};
    }
  }

  Json inspect(const httplib::Request& req) {
    const auto start = std::chrono::steady_clock::now();
    const Model& model = model_for(req);
    const Image image = decode_body(req);
    const Prediction prediction = model.predict(image);
    const std::string name = req.has_param("name") ? req.get_param_value("name") : "upload";
    const Inspection r = pv::inspect(model, *store, prediction, name, options.inspect);
    if (r.report_id) metrics.count_report();
    // The map over the whole image, pure colours: the page blends it with the original.
    const std::vector<float> normalized = model.normalize_map(prediction.map);
    const ModelInfo& info = model.info();
    const cv::Mat map =
        render::original_overlay(image, normalized, prediction.map.width, prediction.map.height,
                                 info.image_size, info.crop_size, 384, /*opacity=*/1.0);
    metrics.observe_inspect(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    Json out = json::inspection(r);
    with_thumbnails(out["matches"]);
    out["map_png"] = base64(png_bytes(map));
    out["image"] = {{"width", image.width}, {"height", image.height}};
    return out;
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

  Json reports(const httplib::Request& req) const {
    const std::string category = req.has_param("category") ? req.get_param_value("category") : "";
    std::size_t limit = 50;
    if (req.has_param("limit")) {
      try {
        limit = std::clamp<std::size_t>(std::stoul(req.get_param_value("limit")), 1, 1000);
      } catch (const std::exception&) {
        throw HttpError{400, "limit must be a number"};
      }
    }
    Json out = Json::array();
    for (const AnomalyReport& r : store->reports(category, limit)) {
      Json report = json::report(r);
      with_thumbnails(report["matches"]);
      out.push_back(std::move(report));
    }
    return out;
  }

  std::vector<unsigned char> thumbnail(const std::string& id_text) const {
    std::int64_t id = 0;
    try {
      id = std::stoll(id_text);
    } catch (const std::exception&) {
      throw HttpError{400, "image id must be a number"};
    }
    const auto image = store->image(id);
    if (!image) throw HttpError{404, "no stored image " + id_text};
    try {
      return png_bytes(render::scaled_original(load_image(image->path), 160));
    } catch (const Error& e) {
      throw HttpError{404, e.what()};
    }
  }

  // Runs `handler`; turns HttpError and pv::Error (store or model trouble) into JSON errors.
  template <typename Handler>
  void guarded(httplib::Response& res, Handler handler) {
    try {
      handler();
    } catch (const HttpError& e) {
      res.status = e.status;
      res.set_content(Json({{"error", e.message}}).dump(), "application/json");
    } catch (const Error& e) {
      res.status = 503;  // the store (database down) or the model failed, not the request
      res.set_content(Json({{"error", e.what()}}).dump(), "application/json");
    }
  }

  void json(httplib::Response& res, const Json& body) {
    res.set_content(body.dump(), "application/json");
  }

  void routes() {
    server.set_payload_max_length(options.max_body_bytes);
    server.set_read_timeout(options.request_timeout_seconds, 0);
    server.set_write_timeout(options.request_timeout_seconds, 0);
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(web_page(), "text/html; charset=utf-8");
    });
    server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      json(res, {{"status", "ok"}, {"categories", models.size()}, {"store", store->location()}});
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.prometheus_text(), "text/plain; version=0.0.4");
    });
    server.Get("/v1/categories", [this](const httplib::Request&, httplib::Response& res) {
      guarded(res, [&] { json(res, categories()); });
    });
    server.Post("/v1/inspect", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { json(res, inspect(req)); });
    });
    server.Get("/v1/reports", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { json(res, reports(req)); });
    });
    server.Get(
        R"(/v1/images/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
          guarded(res, [&] {
            const auto png = thumbnail(req.matches[1]);
            res.set_content(reinterpret_cast<const char*>(png.data()), png.size(), "image/png");
          });
        });
    // Whatever escapes (a bug): a 500 with JSON, never a dropped connection.
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr failure) {
          std::string message = "internal error";
          try {
            std::rethrow_exception(failure);
          } catch (const std::exception& e) {
            message += std::string(": ") + e.what();
          } catch (...) {
          }
          res.status = 500;
          res.set_content(Json({{"error", message}}).dump(), "application/json");
        });
    // Statuses without a body of ours (unknown route, body too large): JSON too.
    server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const bool form = req.get_header_value("Content-Type") == "application/x-www-form-urlencoded";
      const std::string message =
          res.status == 413 && form ? "send the image with Content-Type image/png or image/jpeg, "
                                      "not as a form"
          : res.status == 413       ? "request body too large"
          : res.status == 404       ? "no such endpoint: " + req.path
                              : "bad request: POST /v1/inspect takes the image bytes as the body "
                                "(Content-Type image/png or image/jpeg)";
      res.set_content(Json({{"error", message}}).dump(), "application/json");
    });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.count_request(route_of(req.path), res.status);
    });
  }
};

InspectionService::InspectionService(const ServiceOptions& options)
    : impl_(std::make_unique<Impl>(options)) {}
InspectionService::~InspectionService() = default;

int InspectionService::bind() {
  const int port = impl_->options.port == 0
                       ? impl_->server.bind_to_any_port(impl_->options.host)
                       : (impl_->server.bind_to_port(impl_->options.host, impl_->options.port)
                              ? impl_->options.port
                              : -1);
  if (port < 0) {
    throw Error("cannot listen on " + impl_->options.host + ":" +
                std::to_string(impl_->options.port) + " (--port): in use or not allowed");
  }
  return port;
}

void InspectionService::serve() {
  impl_->server.listen_after_bind();
}
void InspectionService::stop() {
  impl_->server.stop();
}

}  // namespace pv
