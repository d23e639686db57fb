// The file container PatchVec's own formats share (.pvm models, .pvs stores):
//
//   offset 0   magic                 8 bytes, the format's signature
//          8   u32 format version    little-endian
//         12   u32 field             the format's own (the store: embedding dimension; models: 0)
//         16   u64 header length H   little-endian
//         24   header                JSON text, H bytes
//     24 + H   body                  the format's own layout
//   end - 64   SHA-256 of everything before it, as hex text
//
// Written atomically (temporary file + rename). Reading checks the signature, the version, the
// header's length and the checksum; a checksum proves a file unchanged, not valid, so the
// formats check every field of the header and body themselves. Thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pv::container {

inline constexpr std::size_t kPreambleBytes = 24;
inline constexpr std::size_t kChecksumBytes = 64;

struct Format {
  std::string_view magic;  // exactly 8 bytes
  std::uint32_t version = 1;
  std::string_view noun;  // in messages: "not a PatchVec <noun>"
};

// A file of `body_bytes` zero bytes after the preamble and `header`, with room for the
// checksum: the caller fills the body (it starts at kPreambleBytes + header.size()), then
// write().
std::vector<std::byte> layout(const Format& format, std::uint32_t field, std::string_view header,
                              std::size_t body_bytes);

// Fills in the checksum (the last kChecksumBytes of `file`) and writes `file` to `path`
// atomically. Throws pv::Error naming the file.
void write(const std::filesystem::path& path, std::vector<std::byte>& file);

struct Preamble {
  std::uint32_t field = 0;
  std::string_view header;     // the JSON text, not parsed
  std::size_t body_begin = 0;  // offset of the body
};

// The preamble of `bytes`, checked: the signature, the version, a header inside the file.
// Throws pv::Error starting with `where` (e.g. "model file m.pvm: ").
Preamble read_preamble(std::span<const std::byte> bytes, const Format& format,
                       const std::string& where);

// Checks that `bytes` end right after `end` with the checksum of bytes [0, end). Throws
// pv::Error starting with `where`.
void check_checksum(std::span<const std::byte> bytes, std::size_t end, const std::string& where);

}  // namespace pv::container
