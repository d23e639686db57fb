// Reading ZIP archives (PKWARE APPNOTE 6.3), the container of PyTorch checkpoints since 1.6.
//
//   local header + data   per entry ("PK\3\4", 30 bytes, name, extra, then the data)
//   central directory     per entry ("PK\1\2", 46 bytes, name, extra, comment)
//   [zip64 end record]    ("PK\6\6") and its locator ("PK\6\7") when counts or offsets overflow
//   end record            ("PK\5\6", 22 bytes, comment)
//
// Only what checkpoints use: stored or deflated entries, zip64 sizes and offsets, no encryption,
// no spanning. Nothing is trusted: every offset and size is checked against the archive, the
// local header against the central directory, the data against its CRC-32, and a deflated entry
// may neither inflate past its declared size nor claim a ratio beyond kMaxDeflateRatio.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace pv {

class ZipArchive {
 public:
  struct Entry {
    std::string name;
    std::uint16_t method = 0;  // 0 stored, 8 deflated
    std::uint32_t crc32 = 0;
    std::uint64_t compressed_size = 0;
    std::uint64_t size = 0;         // uncompressed
    std::uint64_t data_offset = 0;  // of the (compressed) data in the archive
  };

  // A deflated entry that would grow more than this many times (beyond its first
  // kDeflateAllowance bytes) is refused as a zip bomb. Deflate reaches ~1032:1 on zeros; trained
  // weights compress by a few percent.
  static constexpr std::uint64_t kMaxDeflateRatio = 100;
  static constexpr std::uint64_t kDeflateAllowance = 1 << 20;

  // Parses the directory of `bytes` (which must outlive the archive). Throws pv::Error starting
  // with `where` ("weights file w.pth: ") for anything that is not a well-formed archive.
  ZipArchive(std::span<const std::byte> bytes, std::string where);

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const;  // nullptr when absent

  // A stored entry's bytes, in place (no copy), after checking its CRC-32. Throws for a
  // deflated entry.
  std::span<const std::byte> stored(const Entry& entry) const;
  // Any entry's bytes, inflated if needed, checked against its CRC-32. `max_bytes` (0 = none)
  // refuses larger entries before inflating them.
  std::vector<std::byte> read(const Entry& entry, std::uint64_t max_bytes = 0) const;

  // True when `bytes` begins like a ZIP archive.
  static bool looks_like_zip(std::span<const std::byte> bytes);

 private:
  std::span<const std::byte> bytes_;
  std::string where_;
  std::vector<Entry> entries_;
};

}  // namespace pv
