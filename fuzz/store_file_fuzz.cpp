// Embedded store files (.pvs) whose checksum holds: opened, then searched and listed.
#include <cstdint>
#include <fstream>

#include <patchvec/error.h>
#include <patchvec/store.h>

#include "fuzzing.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path path = pv::fuzzing::scratch_dir("store") / "store.pvs";
  const std::vector<std::byte> bytes = pv::fuzzing::with_checksum(data, size);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  try {
    const auto store = pv::open_embedded_store(path);
    store->image_count();
    store->reports({.limit = 10});
    store->reports({.status = pv::ReportStatus::kOpen, .since = "2020-01-01"});
    if (const auto first = store->image(1)) {
      store->nearest(first->embedding, 5);
      store->nearest(first->embedding, 3, {.category = first->category, .anomalous = true});
    }
  } catch (const pv::Error&) {
  }
  return 0;
}
