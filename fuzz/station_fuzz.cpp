// The station's parsers of bytes it did not write in this run: a lane's journal as a restart reads
// it, a station.toml, the mqtt:// URL of its first line, and a camera's frame of the size, stride
// and pixel format its first bytes say. Each may throw pv::Error, nothing else.
#include <cstdint>
#include <span>
#include <string_view>

#include <patchvec/error.h>
#include <patchvec/station.h>

#include "fuzzing.h"
#include "station/frame_png.h"
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
  if (size >= 6) {
    // A camera states its frame's size; the bytes may be fewer (a short or damaged buffer).
    const int width = 1 + data[0] % 64, height = 1 + data[1] % 64;
    const auto layout = static_cast<pv::station::PixelLayout>(data[2] % 8);
    const std::size_t stride =
        static_cast<std::size_t>(width) * pv::station::bytes_per_pixel(layout) + data[3] % 8;
    const auto pixels = std::as_bytes(std::span(data + 6, size - 6));
    try {
      if (pv::station::frame_png(pixels, width, height, stride, layout).empty()) std::abort();
    } catch (const pv::Error&) {
    }
  }
  return 0;
}
