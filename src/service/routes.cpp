#include "service/routes.h"

#include "service/handlers.h"
#include "service/web_assets.h"

namespace pv::service {
namespace {

using Request = httplib::Request;
using Response = httplib::Response;

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

template <Json (Handlers::*answer)(const Request&)>
void json_answer(Handlers& handlers, const Request& req, Response& res) {
  handlers.guarded(res, [&] { send_json(res, 200, (handlers.*answer)(req)); });
}

template <void (Handlers::*answer)(const Request&, Response&)>
void guarded_answer(Handlers& handlers, const Request& req, Response& res) {
  handlers.guarded(res, [&] { (handlers.*answer)(req, res); });
}

template <std::vector<unsigned char> (Handlers::*answer)(const Request&)>
void png_answer(Handlers& handlers, const Request& req, Response& res) {
  handlers.guarded(res, [&] {
    const std::vector<unsigned char> png = (handlers.*answer)(req);
    res.set_content(reinterpret_cast<const char*>(png.data()), png.size(), "image/png");
  });
}

}  // namespace

RouteTable::RouteTable() {
  constexpr Role kInspect = Role::kInspect;
  for (const WebAsset& asset : web_assets()) {
    routes_.push_back({.method = "GET",
                       .path = asset.path,
                       .label = asset.path,
                       .handle = [asset](Handlers&, const Request&, Response& res) {
                         res.set_content(asset.body, asset.content_type);
                       }});
  }
  const std::vector<Route> api = {
      {.method = "GET",
       .path = "/livez",
       .label = "/livez",
       .health = true,
       .handle = &Handlers::livez},
      {.method = "GET",
       .path = "/healthz",
       .label = "/healthz",
       .health = true,
       .handle = &Handlers::healthz},
      {.method = "GET",
       .path = "/metrics",
       .label = "/metrics",
       .role = kInspect,
       .health = true,
       .handle = &Handlers::metrics},
      {.method = "GET",
       .path = "/v1/categories",
       .label = "/v1/categories",
       .role = kInspect,
       .handle = json_answer<&Handlers::categories>},
      {.method = "POST",
       .path = "/v1/inspect",
       .label = "/v1/inspect",
       .role = kInspect,
       .handle = json_answer<&Handlers::inspect>},
      {.method = "GET",
       .path = "/v1/reports",
       .label = "/v1/reports",
       .role = kInspect,
       .handle = json_answer<&Handlers::reports>},
      {.method = "GET",
       .path = "/v1/reports/*/image",
       .label = "/v1/reports/{id}/image",
       .role = kInspect,
       .handle = png_answer<&Handlers::report_image>},
      {.method = "POST",
       .path = "/v1/reports/*/resolve",
       .label = "/v1/reports/{id}/resolve",
       .role = Role::kOperator,
       .json_body = true,
       .handle = json_answer<&Handlers::resolve>},
      {.method = "GET",
       .path = "/v1/station",
       .label = "/v1/station",
       .role = kInspect,
       .handle = guarded_answer<&Handlers::station>},
      {.method = "GET",
       .path = "/v1/station/events",
       .label = "/v1/station/events",
       .role = kInspect,
       .handle = guarded_answer<&Handlers::station_events>},
      {.method = "GET",
       .path = "/v1/station/lanes/*/latest",
       .label = "/v1/station/lanes/{lane}/latest",
       .role = kInspect,
       .handle = png_answer<&Handlers::station_latest>},
      {.method = "POST",
       .path = "/v1/station/lanes/*/trigger",
       .label = "/v1/station/lanes/{lane}/trigger",
       .role = kInspect,
       .json_body = true,  // a page of another origin cannot trigger a camera
       .handle = json_answer<&Handlers::station_trigger>},
      {.method = "GET",
       .path = "/v1/images/*",
       .label = "/v1/images/{id}",
       .role = kInspect,
       .handle = png_answer<&Handlers::thumbnail>},
  };
  routes_.insert(routes_.end(), api.begin(), api.end());
}

const Route* RouteTable::find(std::string_view method, std::string_view path) const {
  const std::string_view wanted = method == "HEAD" ? "GET" : method;
  for (const Route& route : routes_) {
    if (route.method == wanted && path_matches(route.path, path)) return &route;
  }
  return nullptr;
}

std::string RouteTable::allowed_methods(std::string_view path) const {
  std::string allowed;
  for (const Route& route : routes_) {
    if (!path_matches(route.path, path)) continue;
    if (!allowed.empty()) allowed += ", ";
    allowed += route.method;
  }
  return allowed;
}

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

}  // namespace pv::service
