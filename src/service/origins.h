// Which requests a browser may have been tricked into sending: DNS rebinding (a page of another
// site whose name now points at this service: its requests carry that name in Host) and
// cross-site request forgery (a page of another origin posting to this one: its requests carry
// that origin in Origin and Sec-Fetch-Site). Programs such as curl send neither Origin nor
// Sec-Fetch-Site, and the Host they were told, so they are unaffected.
// Thread-safety: a HostPolicy is read-only once built and may be shared.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <httplib.h>

namespace pv::service {

class HostPolicy {
 public:
  // `allowed`: the host names or addresses requests may name in Host ("*": any). Empty: the
  // listening address `listen_host` and this machine's loopback names (localhost, 127.0.0.1,
  // ::1); any name when `listen_host` is a wildcard address (0.0.0.0, ::), which has no names.
  // Throws pv::Error for an entry that is no host name or address.
  HostPolicy(const std::vector<std::string>& allowed, const std::string& listen_host);

  // Why a request with this Host header value is refused, or nullopt. Requests without Host
  // (HTTP/1.0) pass: browsers always send one.
  std::optional<std::string> refuse_host(const httplib::Request& request) const;

  // Why a state-changing request is refused as coming from another site's page, or nullopt:
  // Sec-Fetch-Site other than same-origin or none, or an Origin other than the request's own
  // (scheme, name and port of its Host; an allowed name when it has no Host).
  std::optional<std::string> refuse_cross_site(const httplib::Request& request) const;

  // For the log: the allowed names, comma-separated, or "any".
  std::string describe() const;

 private:
  bool any_ = false;
  std::vector<std::string> names_;  // lower case, IPv6 without brackets
};

// The host name of a Host header value or URL authority ("[::1]:8080" -> "::1",
// "Example.COM:80" -> "example.com"); nullopt when it is none.
std::optional<std::string> host_name_of(std::string_view authority);

}  // namespace pv::service
