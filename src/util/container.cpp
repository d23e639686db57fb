#include "util/container.h"

#include <cstring>

#include <patchvec/error.h>
#include <patchvec/files.h>

#include "util/sha256.h"

namespace pv::container {
namespace {

template <typename T>
T get(std::span<const std::byte> bytes, std::size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof value);
  return value;
}

template <typename T>
void put(std::vector<std::byte>& bytes, std::size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof value);
}

}  // namespace

std::vector<std::byte> layout(const Format& format, std::uint32_t field, std::string_view header,
                              std::size_t body_bytes) {
  std::vector<std::byte> file(kPreambleBytes + header.size() + body_bytes + kChecksumBytes,
                              std::byte{0});
  std::memcpy(file.data(), format.magic.data(), 8);
  put<std::uint32_t>(file, 8, format.version);
  put<std::uint32_t>(file, 12, field);
  put<std::uint64_t>(file, 16, header.size());
  std::memcpy(file.data() + kPreambleBytes, header.data(), header.size());
  return file;
}

void write(const std::filesystem::path& path, std::vector<std::byte>& file) {
  const std::size_t end = file.size() - kChecksumBytes;
  const std::string digest = sha256_hex(std::span<const std::byte>(file.data(), end));
  std::memcpy(file.data() + end, digest.data(), kChecksumBytes);
  AtomicFile out(path);
  out.write(file);
  out.commit();
}

Preamble read_preamble(std::span<const std::byte> bytes, const Format& format,
                       const std::string& where) {
  if (bytes.size() < 8 || std::memcmp(bytes.data(), format.magic.data(), 8) != 0) {
    std::string signature(format.magic.substr(0, format.magic.find('\0')));
    throw Error(where + "not a PatchVec " + std::string(format.noun) + " (no " + signature +
                " signature)");
  }
  if (bytes.size() < kPreambleBytes + kChecksumBytes) throw Error(where + "truncated");
  const auto version = get<std::uint32_t>(bytes, 8);
  if (version != format.version) {
    throw Error(where + "format version " + std::to_string(version) + ", this patchvec reads " +
                std::to_string(format.version));
  }
  const auto header_size = get<std::uint64_t>(bytes, 16);
  if (header_size > bytes.size() - kPreambleBytes - kChecksumBytes) {
    throw Error(where + "truncated (header of " + std::to_string(header_size) + " bytes)");
  }
  return {.field = get<std::uint32_t>(bytes, 12),
          .header = std::string_view(reinterpret_cast<const char*>(bytes.data()) + kPreambleBytes,
                                     header_size),
          .body_begin = kPreambleBytes + static_cast<std::size_t>(header_size)};
}

void check_checksum(std::span<const std::byte> bytes, std::size_t end, const std::string& where) {
  if (bytes.size() < end + kChecksumBytes) {
    throw Error(where + "truncated: " + std::to_string(bytes.size()) + " bytes, expected " +
                std::to_string(end + kChecksumBytes));
  }
  if (bytes.size() != end + kChecksumBytes) {
    throw Error(where + "corrupt (unexpected trailing bytes)");
  }
  const std::string digest = sha256_hex(bytes.first(end));
  const std::string_view stored(reinterpret_cast<const char*>(bytes.data()) + end, kChecksumBytes);
  if (digest != stored) {
    throw Error(where + "corrupt (checksum mismatch): the file is damaged or truncated");
  }
}

}  // namespace pv::container
