#include "service/origins.h"

#include <algorithm>
#include <cctype>

#include <arpa/inet.h>

#include <patchvec/error.h>
#include <patchvec/text.h>

namespace pv::service {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_wildcard(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

// "host[:port]" split; the port as written ("" when absent). nullopt for malformed text.
std::optional<std::pair<std::string, std::string>> split_authority(std::string_view authority) {
  std::string_view host = authority, port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) return std::nullopt;
      port = rest.substr(1);
    }
    in6_addr address{};
    if (::inet_pton(AF_INET6, std::string(host).c_str(), &address) != 1) return std::nullopt;
  } else {
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      if (authority.find(':') != colon) {  // a bare IPv6 address (not in a Host header)
        in6_addr address{};
        if (::inet_pton(AF_INET6, std::string(authority).c_str(), &address) != 1) {
          return std::nullopt;
        }
        return std::pair(lower(authority), std::string());
      }
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    if (host.empty() || host.find_first_not_of(
                            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
                            std::string_view::npos) {
      return std::nullopt;
    }
  }
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  return std::pair(lower(host), std::string(port));
}

}  // namespace

std::optional<std::string> host_name_of(std::string_view authority) {
  const auto parts = split_authority(authority);
  if (!parts) return std::nullopt;
  return parts->first;
}

HostPolicy::HostPolicy(const std::vector<std::string>& allowed, const std::string& listen_host) {
  if (allowed.empty()) {
    if (is_wildcard(listen_host)) {
      any_ = true;
      return;
    }
    names_ = {"localhost", "127.0.0.1", "::1"};
    const auto name = host_name_of(listen_host);
    if (name && std::find(names_.begin(), names_.end(), *name) == names_.end()) {
      names_.push_back(*name);
    }
    return;
  }
  for (const std::string& entry : allowed) {
    if (entry == "*") {
      any_ = true;
      continue;
    }
    const auto parts = split_authority(entry);
    if (!parts || !parts->second.empty()) {
      throw Error("--allowed-hosts: '" + printable(entry, 100) +
                  "' is no host name or address (give names without ports, e.g. "
                  "inspect.example.com,10.0.0.5)");
    }
    names_.push_back(parts->first);
  }
}

std::optional<std::string> HostPolicy::refuse_host(const httplib::Request& request) const {
  if (any_ || !request.has_header("Host")) return std::nullopt;
  if (request.get_header_value_count("Host") > 1) return "several Host headers";
  const std::string host = request.get_header_value("Host");
  const auto name = host_name_of(host);
  if (name && std::find(names_.begin(), names_.end(), *name) != names_.end()) return std::nullopt;
  return "this service does not answer for host '" + printable(host, 100) + "' (--allowed-hosts)";
}

std::optional<std::string> HostPolicy::refuse_cross_site(const httplib::Request& request) const {
  const std::string site = request.get_header_value("Sec-Fetch-Site");
  if (request.has_header("Sec-Fetch-Site") && site != "same-origin" && site != "none") {
    return "refused: a page of another site (" + printable(site, 20) +
           ") may not change anything here";
  }
  if (!request.has_header("Origin")) return std::nullopt;
  const std::string origin = request.get_header_value("Origin");
  const auto refusal = "refused: a page of another origin (" + printable(origin, 100) +
                       ") may not change anything here";
  const auto scheme_end = origin.find("://");
  if (scheme_end == std::string::npos) return refusal;  // "null" and anything else
  const std::string scheme = lower(std::string_view(origin).substr(0, scheme_end));
  const auto origin_parts = split_authority(std::string_view(origin).substr(scheme_end + 3));
  if ((scheme != "http" && scheme != "https") || !origin_parts) return refusal;
  const std::string default_port = scheme == "https" ? "443" : "80";
  const auto port_or_default = [&](const std::string& port) {
    return port.empty() ? default_port : port;
  };
  if (!request.has_header("Host")) {
    const bool allowed =
        any_ || std::find(names_.begin(), names_.end(), origin_parts->first) != names_.end();
    return allowed ? std::nullopt : std::optional(refusal);
  }
  const auto host_parts = split_authority(request.get_header_value("Host"));
  if (!host_parts || host_parts->first != origin_parts->first ||
      port_or_default(host_parts->second) != port_or_default(origin_parts->second)) {
    return refusal;
  }
  return std::nullopt;
}

std::string HostPolicy::describe() const {
  if (any_) return "any";
  std::string out;
  for (const std::string& name : names_) out += (out.empty() ? "" : ",") + name;
  return out;
}

}  // namespace pv::service
