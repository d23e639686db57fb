// The webhook sink (libcurl): each journal record POSTed as JSON, signed with HMAC-SHA256, one at
// a time and in order, retried with a backoff until a 2xx acknowledges it.
#pragma once

#include <filesystem>
#include <memory>

#include <patchvec/station.h>

#include "station/journal.h"
#include "station/sink.h"

namespace pv::station {

// Starts delivering `journal` from the position kept in `position_file` at once. Throws
// pv::Error for a position file that is not one.
std::unique_ptr<Sink> start_webhook_sink(const WebhookSink& sink, const Journal& journal,
                                         const std::filesystem::path& position_file);

// The signature header's value for `body`: "sha256=" and the hex HMAC-SHA256 with `secret`.
std::string webhook_signature(const std::string& secret, const std::string& body);

}  // namespace pv::station
