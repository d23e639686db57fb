#include "service/admission.h"

#include <string>
#include <string_view>

#include <patchvec/image.h>
#include <patchvec/text.h>

#include "service/handlers.h"
#include "service/http_server.h"
#include "service/requests.h"

namespace pv::service {
namespace {

using Outcome = httplib::Server::HandlerResponse;

// A body left unread (an early refusal) would be taken for the next request: close instead.
Outcome refuse(const httplib::Request& req, httplib::Response& res, int status,
               const std::string& message) {
  if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
    res.set_header("Connection", "close");
    if (auto* connection = GuardedServer::connection()) connection->close = true;
  }
  send_error(res, status, message);
  return Outcome::Handled;
}

// Bytes are bytes: a path or parameter that is not clean text is refused, never echoed raw.
std::string text_refusal(const httplib::Request& req) {
  if (const std::string_view problem = text_problem(req.path); !problem.empty()) {
    return "the request's path " + std::string(problem);
  }
  for (const auto& [key, value] : req.params) {
    const std::string_view problem =
        text_problem(key).empty() ? text_problem(value) : text_problem(key);
    if (!problem.empty()) {
      return "query parameter '" + printable(key, 40) + "' " + std::string(problem);
    }
  }
  return {};
}

// A POST's body as announced: one Content-Length, not chunked, within the limit, not empty, and
// JSON where the route takes JSON. Returns the status and message of a refusal, or status 0.
std::pair<int, std::string> body_refusal(const AdmissionPolicy& policy, const Route& route,
                                         const httplib::Request& req) {
  if (req.has_header("Transfer-Encoding")) {
    return {411, "send a Content-Length (bodies in chunks are not taken)"};
  }
  if (!req.has_header("Content-Length")) {
    return {411, "send a Content-Length (the body's size in bytes)"};
  }
  const std::string length = req.get_header_value("Content-Length");
  for (std::size_t i = 1; i < req.get_header_value_count("Content-Length"); ++i) {
    if (req.get_header_value("Content-Length", i) != length) {
      return {400, "several different Content-Length headers"};
    }
  }
  if (length.empty() || length.find_first_not_of("0123456789") != std::string::npos ||
      length.size() > 18) {
    return {400, "bad Content-Length"};
  }
  if (std::stoull(length) > policy.max_body_bytes) {
    return {413, "request body of " + length + " bytes; the limit is " +
                     std::to_string(policy.max_body_bytes) + " (--max-body)"};
  }
  if (std::stoull(length) == 0) {
    return {400, route.json_body ? std::string("empty body: send a JSON object")
                                 : std::string("empty body: send the image bytes (") +
                                       kSupportedImageFormats + ")"};
  }
  if (route.json_body) {
    const std::string type = req.get_header_value("Content-Type");
    if (!(type == "application/json" || type.starts_with("application/json;"))) {
      return {415, "send the body as Content-Type: application/json"};
    }
  }
  return {0, {}};
}

}  // namespace

Outcome admit(const AdmissionPolicy& policy, const httplib::Request& req, httplib::Response& res) {
  if (const std::string refusal = text_refusal(req); !refusal.empty()) {
    return refuse(req, res, 400, refusal);
  }
  if (const auto refusal = policy.hosts.refuse_host(req)) return refuse(req, res, 421, *refusal);
  const Route* route = policy.routes.find(req.method, req.path);
  if (route == nullptr) {
    const std::string allowed = policy.routes.allowed_methods(req.path);
    if (allowed.empty()) {
      return refuse(req, res, 404, "no such endpoint: " + printable(req.path, 200));
    }
    res.set_header("Allow", allowed);
    return refuse(req, res, 405,
                  printable(req.method, 20) + " is not allowed on " + printable(req.path, 200) +
                      " (only " + allowed + ")");
  }
  const auto* connection = GuardedServer::connection();
  if (connection != nullptr && connection->reserve && !route->health) {
    res.set_header("Retry-After", "1");
    return refuse(req, res, connection->busy_status,
                  connection->busy_status == 429
                      ? "too many connections from " + connection->client + "; try again"
                      : "too many connections; try again");
  }
  if (req.method != "GET" && req.method != "HEAD") {
    if (const auto refusal = policy.hosts.refuse_cross_site(req)) {
      return refuse(req, res, 403, *refusal);
    }
  }
  if (policy.tokens != nullptr && route->role) {
    const auto caller = policy.tokens->caller_of(req.get_header_value("Authorization"));
    if (!caller) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"patchvec\"");
      return refuse(req, res, 401, "a token is needed: send 'Authorization: Bearer <token>'");
    }
    if (static_cast<int>(caller->role) < static_cast<int>(*route->role)) {
      return refuse(req, res, 403,
                    std::string("this token's role (") + role_name(caller->role) +
                        ") may not call " + route->label + " (it needs " + role_name(*route->role) +
                        ")");
    }
  }
  if (req.method == "POST") {
    if (const auto [status, message] = body_refusal(policy, *route, req); status != 0) {
      return refuse(req, res, status, message);
    }
  }
  return Outcome::Unhandled;
}

std::shared_ptr<void> take_slot(FairSlots& slots, const ServiceOptions& options) {
  if (!slots.acquire_for(std::chrono::seconds(options.request_timeout_seconds))) {
    throw HttpError{503, "busy: every inspection slot stayed taken; try again"};
  }
  return {&slots, [](FairSlots* taken) { taken->release(); }};
}

}  // namespace pv::service
