// The MQTT sink (libmosquitto): each journal record as one message at QoS 1 on the sink's topic,
// and the station's status, retained, on <topic>/status ("online" once connected; "offline" as
// the last will and on a clean stop).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <patchvec/station.h>

#include "station/journal.h"
#include "station/sink.h"

namespace pv::station {

struct MqttIdentity {
  std::string station;
  std::string lane;
  std::size_t index = 0;  // the lane's n-th MQTT sink: its default client id differs
};

// Starts delivering `journal` from the position kept in `position_file` at once; reconnects with
// a backoff of 1 s doubling to 30 s. A connection lost with messages unacknowledged sends them
// again on the next one. Throws pv::Error for a position file that is not one.
std::unique_ptr<Sink> start_mqtt_sink(const MqttSink& sink, const MqttIdentity& identity,
                                      const Journal& journal,
                                      const std::filesystem::path& position_file);

}  // namespace pv::station
