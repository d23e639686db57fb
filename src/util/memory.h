// Memory figures of the machine and this process.
#pragma once

#include <cstdint>
#include <string>

namespace pv {

std::int64_t physical_memory_bytes();
std::int64_t peak_memory_bytes();  // peak resident set size of this process so far

// "4G", "512M", "1.5G", "2000000000" -> bytes; throws pv::Error on anything else.
std::int64_t parse_bytes(const std::string& text);

}  // namespace pv
