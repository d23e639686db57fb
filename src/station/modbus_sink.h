// The Modbus TCP sink (libmodbus): a server on the lane's port that a PLC polls. The register
// map (holding registers; the coils mirror the flags):
//   0, 1  sequence number of the result shown, low and high 16 bits (0: none yet)
//   2     result: 0 none, 1 OK (normal), 2 NOK (anomalous), 3 error (the file was no image)
//   3     flags: bit 0 OK, 1 NOK, 2 error, 3 busy, 4 fault, 5 waiting for the acknowledge,
//         6 heartbeat (toggles every second)
//   4     normalised score x 1000 (0.5 = at the threshold; 65535 when the model has none)
//   5     score x 100, 6 threshold x 100 (capped at 65535)
//   7     results recorded and not shown yet (handshake), capped at 65535
//   10    acknowledge: the PLC writes the low 16 bits of the sequence number it has taken
// Every other write is refused with exception 2 (illegal data address).
#pragma once

#include <filesystem>
#include <memory>

#include <patchvec/station.h>

#include "station/journal.h"
#include "station/sink.h"

namespace pv::station {

inline constexpr int kModbusRegisters = 16;
inline constexpr int kModbusAcknowledge = 10;
inline constexpr int kModbusCoils = 8;

// Listens on sink.address:sink.port at once (throws pv::Error naming them if it cannot) and shows
// `journal` from the position in `position_file`. `signals` (may be null) feed the busy and
// fault bits and must outlive the sink. `bound_port` (if given) receives the port bound.
std::unique_ptr<Sink> start_modbus_sink(const ModbusSink& sink, const Journal& journal,
                                        const std::filesystem::path& position_file,
                                        const LaneSignals* signals, int* bound_port = nullptr);

}  // namespace pv::station
