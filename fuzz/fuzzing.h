// What the libFuzzer targets share. Each target feeds bytes to one parser of untrusted input and
// accepts exactly one outcome besides success: a pv::Error. A crash, a sanitizer report, a hang or
// any other exception is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <unistd.h>

#include "util/sha256.h"

namespace pv::fuzzing {

inline std::span<const std::byte> bytes_of(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

// The input with its SHA-256 trailer (64 hex characters) appended: files whose checksum holds,
// so that the fuzzer reaches the validation behind it instead of stopping at the checksum.
inline std::vector<std::byte> with_checksum(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(bytes_of(data, size).begin(), bytes_of(data, size).end());
  const std::string digest = sha256_hex(bytes);
  for (const char c : digest) bytes.push_back(static_cast<std::byte>(c));
  return bytes;
}

// A private folder for files a target must write (in memory when /dev/shm exists).
inline std::filesystem::path scratch_dir(const char* target) {
  const std::filesystem::path base = std::filesystem::is_directory("/dev/shm")
                                         ? "/dev/shm"
                                         : std::filesystem::temp_directory_path();
  const auto dir =
      base / ("patchvec-fuzz-" + std::string(target) + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace pv::fuzzing
