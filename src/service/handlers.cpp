#include "service/handlers.h"

#include <chrono>

#include <opencv2/imgcodecs.hpp>
#include <openssl/evp.h>

#include <patchvec/error.h>
#include <patchvec/json.h>
#include <patchvec/log.h>
#include <patchvec/text.h>

#include "image/render.h"
#include "service/admission.h"
#include "service/http_server.h"
#include "service/requests.h"

namespace pv::service {
namespace {

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

void with_thumbnails(Json& matches) {
  for (Json& m : matches) {
    m["thumbnail"] = "/v1/images/" + std::to_string(m["id"].get<std::int64_t>());
  }
}

// The name a report records for an upload: ?name=, else the form's file name when it is clean
// text (an odd file name is no reason to refuse the image), else "upload".
std::string upload_name(const httplib::Request& req, const Upload& upload) {
  if (req.has_param("name")) {
    std::string name = req.get_param_value("name");
    check_name(name);
    return name;
  }
  if (upload.filename.empty()) return "upload";
  try {
    check_name(upload.filename);
    return upload.filename;
  } catch (const HttpError&) {
    return "upload";
  }
}

std::string category_of(const httplib::Request& req) {
  if (!req.has_param("category")) throw HttpError{400, "missing ?category="};
  return req.get_param_value("category");
}

// The anomaly map over the whole image as a PNG, `opacity` over the original (1: the map in pure
// colours, which the inspect page blends with the original itself).
std::vector<unsigned char> map_png(const Inspected& r, double opacity) {
  const ModelInfo& info = r.model->info();
  return png_bytes(render::original_overlay(r.image, r.model->normalize_map(r.prediction.map),
                                            r.prediction.map.width, r.prediction.map.height,
                                            info.options.embedder.image_size,
                                            info.options.embedder.crop_size, kMapHeight, opacity));
}

std::int64_t report_id(const std::string& text) {
  const auto id = parse_id(text, "a report");
  if (!id) throw HttpError{404, "no report " + text};
  return *id;
}

}  // namespace

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, {{"error", message}});
}

// POST /v1/inspect?category=C[&name=N], the image as the body or a form's file.
Json Handlers::inspect(const httplib::Request& req) {
  const auto start = std::chrono::steady_clock::now();
  const Upload upload = upload_of(req);
  const Inspected r = c_.inspector.inspect(
      category_of(req), {.bytes = upload.bytes, .name = upload_name(req, upload)},
      c_.options.inspect, [&] { return take_slot(c_.inspection_slots, c_.options); });
  if (r.inspection.report_id) c_.metrics.count_report();
  c_.metrics.observe_inspect(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  Json out = json::inspection(r.inspection);
  with_thumbnails(out["matches"]);
  out["map_png"] = base64(map_png(r, /*opacity=*/1.0));
  out["image"] = {{"width", r.image.width}, {"height", r.image.height}};
  return out;
}

Json Handlers::categories(const httplib::Request&) {
  Json out = Json::array();
  for (const auto& [name, served] : c_.inspector.models()) {
    Json category = json::model(served.model->info());
    category["sha256"] = served.sha256;
    category["published"] = nullptr;
    if (served.published) {
      category["published"] = {{"revision", served.published->revision},
                               {"created", served.published->created}};
    }
    category["stored_images"] = c_.inspector.store().image_count(name);
    out.push_back(std::move(category));
  }
  return out;
}

Json Handlers::report_json(const AnomalyReport& r) const {
  Json report = json::report(r);
  with_thumbnails(report["matches"]);
  report["image_url"] = "/v1/reports/" + std::to_string(r.id) + "/image";
  return report;
}

// GET /v1/reports[?category=C][&status=open|resolved][&limit=N]
Json Handlers::reports(const httplib::Request& req) {
  ReportQuery query;
  if (req.has_param("category")) query.category = req.get_param_value("category");
  if (req.has_param("status")) {
    try {
      query.status = parse_report_status(req.get_param_value("status"));
    } catch (const Error& e) {
      throw HttpError{400, e.what()};
    }
  }
  if (req.has_param("limit")) {
    query.limit =
        static_cast<std::size_t>(parse_number(req.get_param_value("limit"), 1, 1000, "limit"));
  }
  Json out = Json::array();
  for (const AnomalyReport& r : c_.inspector.store().reports(query)) out.push_back(report_json(r));
  return out;
}

std::vector<unsigned char> Handlers::report_image(const httplib::Request& req) {
  const std::string id_text = req.matches[1];
  const auto report = c_.inspector.store().report(report_id(id_text));
  if (!report) throw HttpError{404, "no report " + id_text};
  const std::string file = report->image.empty() ? report->path : report->image;
  try {
    return png_bytes(
        render::scaled_original(load_image(file, c_.options.image_limits), kMapHeight));
  } catch (const ImageError& e) {
    log::warn("image of report " + id_text + ": " + e.what());
    throw HttpError{404, "the image of report " + id_text + " is unavailable"};
  }
}

// POST /v1/reports/{id}/resolve {"resolution": "false_alarm"|"defect", "defect", "note", "by"}
Json Handlers::resolve(const httplib::Request& req) {
  const std::int64_t id = report_id(req.matches[1]);
  ReportResolution resolution;
  try {
    const auto body = nlohmann::json::parse(req.body);
    if (!body.is_object()) throw HttpError{400, "send a JSON object"};
    const auto text = [&](const char* key) {
      if (!body.contains(key) || body.at(key).is_null()) return std::string();
      if (!body.at(key).is_string()) throw HttpError{400, std::string(key) + " must be text"};
      return body.at(key).get<std::string>();
    };
    resolution = {.resolution = parse_resolution(text("resolution")),
                  .defect = text("defect"),
                  .note = text("note"),
                  .by = text("by")};
  } catch (const nlohmann::json::exception&) {
    throw HttpError{400,
                    "the body is not JSON: send {\"resolution\": \"false_alarm\"} or "
                    "{\"resolution\": \"defect\", \"defect\": \"crack\"}"};
  } catch (const HttpError&) {
    throw;
  } catch (const Error& e) {
    throw HttpError{400, e.what()};
  }
  // With tokens the token says who decides; without, the client may say (else its address).
  if (const auto* connection = GuardedServer::connection()) {
    if (c_.tokens != nullptr) {
      resolution.by = c_.tokens->caller_of(req.get_header_value("Authorization"))->name;
    } else if (resolution.by.empty()) {
      resolution.by = "operator at " + connection->client;
    }
  }
  try {
    check_resolution(resolution);
  } catch (const Error& e) {
    throw HttpError{400, e.what()};
  }
  const ResolvedReport resolved = c_.inspector.resolve(id, resolution);  // 404, 409
  Json out = report_json(resolved.report);
  out["image_id"] = resolved.image_id;
  return out;
}

std::vector<unsigned char> Handlers::thumbnail(const httplib::Request& req) {
  const std::string id_text = req.matches[1];
  const auto id = parse_id(id_text, "an image");
  const auto image = id ? c_.inspector.store().image(*id) : std::nullopt;
  if (!image) throw HttpError{404, "no stored image " + id_text};
  try {
    return png_bytes(render::scaled_original(load_image(image->path, c_.options.image_limits),
                                             kThumbnailHeight));
  } catch (const ImageError& e) {
    log::warn("thumbnail of stored image " + id_text + ": " + e.what());
    throw HttpError{404, "the picture of stored image " + id_text + " is unavailable"};
  }
}

void Handlers::livez(const httplib::Request&, httplib::Response& res) {
  send_json(res, 200, {{"status", "alive"}});
}

// Readiness: the store answered its last check (Background), answered at once whatever the
// store does.
void Handlers::healthz(const httplib::Request&, httplib::Response& res) {
  const bool ok = c_.ready();
  send_json(res, ok ? 200 : 503,
            {{"status", ok ? "ok" : "unavailable"},
             {"categories", c_.inspector.models().size()},
             {"store_kind", c_.inspector.store().kind()},
             {"store_ok", ok}});
}

void Handlers::metrics(const httplib::Request&, httplib::Response& res) {
  const BatcherStats batches = c_.inspector.batcher_stats();
  std::string text = c_.metrics.prometheus_text(
      batches.batches, batches.images, static_cast<long long>(c_.inspector.reports_pending()));
  if (c_.station != nullptr) text += c_.station->metrics_text();
  res.set_content(text, "text/plain; version=0.0.4");
}

void Handlers::station(const httplib::Request&, httplib::Response& res) {
  if (c_.station == nullptr) throw HttpError{404, "this service is not a station"};
  res.status = 200;
  res.set_content(c_.station->status_json(), "application/json");
}

// GET /v1/station/lanes/{lane}/latest: the lane's last image under its anomaly map, half opaque.
std::vector<unsigned char> Handlers::station_latest(const httplib::Request& req) {
  if (c_.station == nullptr) throw HttpError{404, "this service is not a station"};
  const std::string lane = req.matches[1];
  const auto r = c_.station->latest(lane);
  if (!r) throw HttpError{404, "lane " + printable(lane, 100) + " has inspected no image yet"};
  return map_png(*r, /*opacity=*/0.5);
}

// POST /v1/station/lanes/{lane}/trigger with the JSON object {}: a software trigger for the lane's
// camera; its frame is inspected and recorded as any other (the answer does not wait for it).
Json Handlers::station_trigger(const httplib::Request& req) {
  if (c_.station == nullptr) throw HttpError{404, "this service is not a station"};
  const auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.empty()) throw HttpError{400, "send the JSON object {}"};
  const std::string lane = req.matches[1];
  c_.station->trigger(lane);
  return {{"lane", lane}, {"triggered", true}};
}

// GET /v1/station/events: the status as Server-Sent Events, one when something is recorded and
// at least every second; a stream ends after five minutes (the page reconnects) or when the
// station stops, so that no connection is held for ever.
void Handlers::station_events(const httplib::Request&, httplib::Response& res) {
  if (c_.station == nullptr) throw HttpError{404, "this service is not a station"};
  constexpr int kMaxEvents = 300;
  struct Stream {
    std::uint64_t version = 0;
    int events = 0;
  };
  auto stream = std::make_shared<Stream>();
  const StationView* station = c_.station;
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream", [station, stream](std::size_t, httplib::DataSink& sink) {
        std::string event;
        if (stream->events == 0) {
          event = "retry: 2000\n\n";
          stream->version = station->wait_for_change(0, std::chrono::milliseconds(0));
        } else {
          stream->version = station->wait_for_change(stream->version, std::chrono::seconds(1));
        }
        if (stream->version == 0 || ++stream->events > kMaxEvents) {
          sink.done();
          return true;
        }
        event += "data: " + station->status_json() + "\n\n";
        return sink.write(event.data(), event.size());
      });
}

void Handlers::guarded(httplib::Response& res, const std::function<void()>& handler) {
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
    const long long incident = next_incident();
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

}  // namespace pv::service
