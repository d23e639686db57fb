// The station's parsers of bytes it did not write in this run: a lane's journal as a restart reads
// it, a station.toml, and the mqtt:// URL of its first line. Each may throw pv::Error, nothing
// else.
#include <cstdint>
#include <string_view>

#include <patchvec/error.h>
#include <patchvec/station.h>

#include "fuzzing.h"
#include "station/journal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const pv::station::ParsedJournal journal =
        pv::station::parse_journal(text, "fuzz.jsonl", 1 + size % 1000);
    if (journal.valid_bytes > size || journal.keys.size() != journal.offsets.size()) std::abort();
  } catch (const pv::Error&) {
  }
  try {
    pv::parse_station_config(text, "/nonexistent/fuzz/station.toml");
  } catch (const pv::Error&) {
  }
  try {
    pv::parse_mqtt_url(std::string(text.substr(0, text.find('\n'))), "--mqtt");
  } catch (const pv::Error&) {
  }
  return 0;
}
