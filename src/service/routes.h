// The service's endpoints as data: one table that routing, permissions, the reserve connections
// and the metrics' labels read, each row naming the handler that answers (handlers.h).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <httplib.h>

#include "service/auth.h"

namespace pv::service {

class Handlers;

struct Route {
  std::string method;        // "GET" (HEAD too) or "POST"
  std::string path;          // exact, or with one '*' for an {id} segment (request.matches[1])
  std::string label;         // for /metrics and messages: "/v1/reports/{id}/image"
  std::optional<Role> role;  // who may call it once tokens are required; nullopt: everyone
  bool health = false;       // served on reserve connections too
  // The body is JSON, sent as application/json: a type no page of another origin can send
  // without asking first (CORS preflight, which this service never grants).
  bool json_body = false;
  std::function<void(Handlers&, const httplib::Request&, httplib::Response&)> handle;
};

// Thread-safety: immutable after construction; any number of threads may read it.
class RouteTable {
 public:
  // Every endpoint of docs/api.md and the page's files (web/).
  RouteTable();

  const std::vector<Route>& routes() const { return routes_; }
  // The route of a request (HEAD as GET), or nullptr.
  const Route* find(std::string_view method, std::string_view path) const;
  // The methods `path` has, "GET, POST"; empty for a path no route has.
  std::string allowed_methods(std::string_view path) const;

 private:
  std::vector<Route> routes_;
};

// A route's path as the regular expression httplib matches ('*' captured as matches[1]).
std::string path_regex(std::string_view pattern);

}  // namespace pv::service
