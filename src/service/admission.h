// What a request must pass before its body is read or an image waits for its turn: its text,
// host, route, method, connection kind, token, origin and announced body. Anything refused here
// never costs a body read; what passes still meets the handlers' own checks.
#pragma once

#include <cstddef>
#include <memory>

#include <httplib.h>

#include <patchvec/service.h>

#include "service/auth.h"
#include "service/origins.h"
#include "service/routes.h"
#include "service/slots.h"

namespace pv::service {

struct AdmissionPolicy {
  const RouteTable& routes;
  const HostPolicy& hosts;
  const TokenFile* tokens;  // nullptr: no authentication
  std::size_t max_body_bytes;
};

// httplib's pre-routing hook: Handled (with a JSON refusal in `res`, the connection closed when a
// body is left unread) or Unhandled (the request goes on to its route).
// Thread-safety: may run on many threads at once; reads `policy` only.
httplib::Server::HandlerResponse admit(const AdmissionPolicy& policy, const httplib::Request& req,
                                       httplib::Response& res);

// One of the inspection slots, first come first served, held until the returned handle's last
// copy is destroyed: bounds the memory of inspections at once (a TurnWaiter's answer). Throws
// HttpError 503 when every slot stays taken for the request's timeout.
std::shared_ptr<void> take_slot(FairSlots& slots, const ServiceOptions& options);

}  // namespace pv::service
