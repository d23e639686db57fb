// What each endpoint answers: parse the request, call the library, serialise the answer. The
// route table (routes.h) says which handler answers what; admission (admission.h) has checked
// the request's route, token, host and body size before any of these runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <patchvec/inspector.h>
#include <patchvec/service.h>

#include "service/auth.h"
#include "service/metrics.h"
#include "service/slots.h"

namespace pv::service {

using Json = nlohmann::ordered_json;

// Text that is not UTF-8 (a store's old rows, a file name) is replaced, never a failure.
void send_json(httplib::Response& res, int status, const Json& body);
void send_error(httplib::Response& res, int status, const std::string& message);

// The service's state the handlers answer from; owned by the service, which outlives them.
struct HandlerContext {
  const ServiceOptions& options;
  Inspector& inspector;
  const TokenFile* tokens;  // nullptr: no authentication
  Metrics& metrics;
  FairSlots& inspection_slots;
  std::function<bool()> ready;           // the last readiness check's answer (answers at once)
  const StationView* station = nullptr;  // a station's endpoints; nullptr: 404
};

// Thread-safety: every handler may run on many threads at once.
class Handlers {
 public:
  explicit Handlers(HandlerContext context) : c_(std::move(context)) {}

  // JSON answers (200; errors through guarded()).
  Json categories(const httplib::Request& req);
  Json inspect(const httplib::Request& req);
  Json reports(const httplib::Request& req);
  Json resolve(const httplib::Request& req);
  // PNG answers.
  std::vector<unsigned char> report_image(const httplib::Request& req);
  std::vector<unsigned char> thumbnail(const httplib::Request& req);
  // Answers of their own form: probes and Prometheus text.
  void livez(const httplib::Request& req, httplib::Response& res);
  void healthz(const httplib::Request& req, httplib::Response& res);
  void metrics(const httplib::Request& req, httplib::Response& res);
  // A station's: its status, its lanes' latest pictures, and the status as Server-Sent Events.
  void station(const httplib::Request& req, httplib::Response& res);
  std::vector<unsigned char> station_latest(const httplib::Request& req);
  Json station_trigger(const httplib::Request& req);
  void station_events(const httplib::Request& req, httplib::Response& res);

  // Runs `handler`; turns refusals, unreadable images and failures into JSON errors. Failures of
  // the store or a model are logged with their details and answered without them (they name
  // hosts, users and files), as 503 with an incident number.
  void guarded(httplib::Response& res, const std::function<void()>& handler);
  // A new incident number, for failures logged with their details and answered without.
  long long next_incident() { return ++incidents_; }

 private:
  Json report_json(const AnomalyReport& report) const;

  HandlerContext c_;
  std::atomic<long long> incidents_ = 0;
};

}  // namespace pv::service
