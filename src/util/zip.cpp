#include "util/zip.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include <zlib.h>

#include <patchvec/error.h>

namespace pv {
namespace {

constexpr std::uint32_t kLocalSignature = 0x04034b50;
constexpr std::uint32_t kCentralSignature = 0x02014b50;
constexpr std::uint32_t kEndSignature = 0x06054b50;
constexpr std::uint32_t kZip64EndSignature = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr std::size_t kLocalHeaderBytes = 30;
constexpr std::size_t kCentralHeaderBytes = 46;
constexpr std::size_t kEndBytes = 22;
constexpr std::size_t kZip64EndBytes = 56;
constexpr std::size_t kZip64LocatorBytes = 20;

// Little-endian reads at checked positions.
class Reader {
 public:
  Reader(std::span<const std::byte> bytes, const std::string& where)
      : bytes_(bytes), where_(where) {}

  void require(std::uint64_t offset, std::uint64_t length, const char* what) const {
    if (offset > bytes_.size() || length > bytes_.size() - offset) {
      throw Error(where_ + "corrupt ZIP archive (" + what + " lies beyond the end of the file)");
    }
  }
  std::uint64_t le(std::uint64_t offset, int width) const {
    require(offset, static_cast<std::uint64_t>(width), "a field");
    std::uint64_t value = 0;
    for (int i = width - 1; i >= 0; --i) {
      value = value << 8 | static_cast<std::uint64_t>(bytes_[offset + i]);
    }
    return value;
  }
  std::uint16_t u16(std::uint64_t offset) const {
    return static_cast<std::uint16_t>(le(offset, 2));
  }
  std::uint32_t u32(std::uint64_t offset) const {
    return static_cast<std::uint32_t>(le(offset, 4));
  }
  std::uint64_t u64(std::uint64_t offset) const { return le(offset, 8); }
  std::string text(std::uint64_t offset, std::uint64_t length) const {
    require(offset, length, "a name");
    return {reinterpret_cast<const char*>(bytes_.data() + offset),
            static_cast<std::size_t>(length)};
  }
  std::size_t size() const { return bytes_.size(); }

 private:
  std::span<const std::byte> bytes_;
  const std::string& where_;
};

std::uint32_t crc_of(std::span<const std::byte> bytes) {
  uLong crc = crc32_z(0L, Z_NULL, 0);
  return static_cast<std::uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

}  // namespace

bool ZipArchive::looks_like_zip(std::span<const std::byte> bytes) {
  return bytes.size() >= 4 && bytes[0] == std::byte{'P'} && bytes[1] == std::byte{'K'} &&
         bytes[2] == std::byte{3} && bytes[3] == std::byte{4};
}

ZipArchive::ZipArchive(std::span<const std::byte> bytes, std::string where)
    : bytes_(bytes), where_(std::move(where)) {
  const Reader in(bytes_, where_);
  if (bytes_.size() < kEndBytes) throw Error(where_ + "corrupt ZIP archive (too short)");

  // The end record is the last one whose comment reaches exactly to the end of the file.
  std::uint64_t end = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t lowest =
      bytes_.size() > kEndBytes + 0xFFFF ? bytes_.size() - kEndBytes - 0xFFFF : 0;
  for (std::uint64_t at = bytes_.size() - kEndBytes + 1; at-- > lowest;) {
    if (in.u32(at) == kEndSignature && at + kEndBytes + in.u16(at + 20) == bytes_.size()) {
      end = at;
      break;
    }
  }
  if (end == std::numeric_limits<std::uint64_t>::max()) {
    throw Error(where_ + "corrupt ZIP archive (no end-of-directory record: truncated?)");
  }
  std::uint64_t count = in.u16(end + 10);
  std::uint64_t directory_size = in.u32(end + 12);
  std::uint64_t directory_offset = in.u32(end + 16);
  if (in.u16(end + 4) != 0 || in.u16(end + 6) != 0 || in.u16(end + 8) != count) {
    throw Error(where_ + "ZIP archives split over several files are not supported");
  }
  std::uint64_t directory_end = end;
  // A zip64 end record (written when counts or offsets overflow, and by PyTorch always) sits
  // between the directory and the end record, found through its locator.
  const bool saturated =
      count == 0xFFFF || directory_size == 0xFFFFFFFF || directory_offset == 0xFFFFFFFF;
  const bool has_locator = end >= kZip64LocatorBytes + kZip64EndBytes &&
                           in.u32(end - kZip64LocatorBytes) == kZip64LocatorSignature;
  if (saturated && !has_locator)
    throw Error(where_ + "corrupt ZIP archive (zip64 locator missing)");
  if (has_locator) {
    const std::uint64_t record = in.u64(end - kZip64LocatorBytes + 8);
    in.require(record, kZip64EndBytes, "the zip64 end record");
    if (record > end - kZip64LocatorBytes - kZip64EndBytes ||
        in.u32(record) != kZip64EndSignature) {
      throw Error(where_ + "corrupt ZIP archive (bad zip64 end record)");
    }
    const std::uint64_t count64 = in.u64(record + 32);
    const std::uint64_t size64 = in.u64(record + 40);
    const std::uint64_t offset64 = in.u64(record + 48);
    if (!saturated &&
        (count64 != count || size64 != directory_size || offset64 != directory_offset)) {
      throw Error(where_ + "corrupt ZIP archive (the two end records disagree)");
    }
    count = count64;
    directory_size = size64;
    directory_offset = offset64;
    directory_end = record;
  }
  if (directory_offset > directory_end || directory_size != directory_end - directory_offset) {
    throw Error(where_ + "corrupt ZIP archive (central directory does not end where it should)");
  }
  if (count > directory_size / kCentralHeaderBytes) {
    throw Error(where_ + "corrupt ZIP archive (more entries than the directory can hold)");
  }

  std::set<std::string> names;
  std::uint64_t at = directory_offset;
  entries_.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; i < count; ++i) {
    in.require(at, kCentralHeaderBytes, "a directory entry");
    if (in.u32(at) != kCentralSignature) {
      throw Error(where_ + "corrupt ZIP archive (bad directory entry " + std::to_string(i) + ")");
    }
    const std::uint16_t flags = in.u16(at + 8);
    Entry entry;
    entry.method = in.u16(at + 10);
    entry.crc32 = in.u32(at + 16);
    entry.compressed_size = in.u32(at + 20);
    entry.size = in.u32(at + 24);
    const std::uint16_t name_length = in.u16(at + 28);
    const std::uint16_t extra_length = in.u16(at + 30);
    const std::uint16_t comment_length = in.u16(at + 32);
    std::uint64_t local = in.u32(at + 42);
    entry.name = in.text(at + kCentralHeaderBytes, name_length);
    const std::string field = where_ + "ZIP entry '" + entry.name + "': ";
    if (entry.name.find('\0') != std::string::npos) throw Error(field + "name holds a NUL byte");
    if ((flags & 0x1) != 0) throw Error(field + "encrypted entries are not supported");
    if (entry.method != 0 && entry.method != 8) {
      throw Error(field + "compression method " + std::to_string(entry.method) +
                  " is not supported (stored or deflated only)");
    }
    // Zip64 sizes and offsets live in extra field 0x0001, in this order, when the 32-bit field
    // is saturated.
    const std::uint64_t extra = at + kCentralHeaderBytes + name_length;
    in.require(extra, extra_length, "a directory entry's extra field");
    for (std::uint64_t x = extra; x + 4 <= extra + extra_length;) {
      const std::uint16_t id = in.u16(x);
      const std::uint16_t length = in.u16(x + 2);
      if (x + 4 + length > extra + extra_length) throw Error(field + "corrupt extra field");
      if (id == 0x0001) {
        std::uint64_t y = x + 4;
        const auto take = [&](std::uint64_t& value) {
          if (y + 8 > x + 4 + length) throw Error(field + "corrupt zip64 extra field");
          value = in.u64(y);
          y += 8;
        };
        if (entry.size == 0xFFFFFFFF) take(entry.size);
        if (entry.compressed_size == 0xFFFFFFFF) take(entry.compressed_size);
        if (local == 0xFFFFFFFF) take(local);
      }
      x += 4 + length;
    }
    at = extra + extra_length + comment_length;
    if (at > directory_end) throw Error(field + "directory entry runs past the directory");
    if (!names.insert(entry.name).second) throw Error(field + "appears twice");

    // The local header must agree with the directory.
    in.require(local, kLocalHeaderBytes, "a local header");
    if (local >= directory_offset || in.u32(local) != kLocalSignature) {
      throw Error(field + "bad local header offset");
    }
    const std::uint16_t local_flags = in.u16(local + 6);
    const std::uint16_t local_name_length = in.u16(local + 26);
    if (in.u16(local + 8) != entry.method || in.text(local + 30, local_name_length) != entry.name) {
      throw Error(field + "local header disagrees with the directory");
    }
    if ((local_flags & 0x8) == 0 && in.u32(local + 18) != 0xFFFFFFFF &&
        (in.u32(local + 14) != entry.crc32 || in.u32(local + 18) != entry.compressed_size ||
         in.u32(local + 22) != entry.size)) {
      throw Error(field + "local header lies about its size or checksum");
    }
    entry.data_offset = local + kLocalHeaderBytes + local_name_length + in.u16(local + 28);
    if (entry.data_offset > directory_offset ||
        entry.compressed_size > directory_offset - entry.data_offset) {
      throw Error(field + "data runs past the end of the archive (" +
                  std::to_string(entry.compressed_size) + " bytes declared)");
    }
    if (entry.method == 0 && entry.compressed_size != entry.size) {
      throw Error(field + "stored entry whose two sizes differ");
    }
    if (entry.method == 8 &&
        entry.size > entry.compressed_size * kMaxDeflateRatio + kDeflateAllowance) {
      throw Error(field + "claims to inflate " + std::to_string(entry.compressed_size) +
                  " bytes to " + std::to_string(entry.size) +
                  " (a zip bomb's ratio); refusing to inflate it");
    }
    entries_.push_back(std::move(entry));
  }
  if (at != directory_end) throw Error(where_ + "corrupt ZIP archive (directory size mismatch)");

  // Entries' data must not overlap (overlapping entries are how zip bombs multiply).
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Entry* a, const Entry* b) { return a->data_offset < b->data_offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i - 1]->data_offset + by_offset[i - 1]->compressed_size >
        by_offset[i]->data_offset) {
      throw Error(where_ + "ZIP entries '" + by_offset[i - 1]->name + "' and '" +
                  by_offset[i]->name + "' overlap");
    }
  }
}

const ZipArchive::Entry* ZipArchive::find(const std::string& name) const {
  for (const auto& entry : entries_) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

std::span<const std::byte> ZipArchive::stored(const Entry& entry) const {
  if (entry.method != 0) {
    throw Error(where_ + "ZIP entry '" + entry.name + "' is compressed, expected stored");
  }
  const auto data = bytes_.subspan(entry.data_offset, entry.size);
  if (crc_of(data) != entry.crc32) {
    throw Error(where_ + "ZIP entry '" + entry.name + "' is corrupt (CRC-32 mismatch)");
  }
  return data;
}

std::vector<std::byte> ZipArchive::read(const Entry& entry, std::uint64_t max_bytes) const {
  const std::string field = where_ + "ZIP entry '" + entry.name + "': ";
  if (max_bytes != 0 && entry.size > max_bytes) {
    throw Error(field + std::to_string(entry.size) + " bytes, more than the " +
                std::to_string(max_bytes) + " allowed");
  }
  if (entry.method == 0) {
    const auto data = stored(entry);
    return {data.begin(), data.end()};
  }
  std::vector<std::byte> out(static_cast<std::size_t>(entry.size));
  z_stream stream{};
  if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) throw Error(field + "cannot start inflating");
  const auto input = bytes_.subspan(entry.data_offset, entry.compressed_size);
  // zlib's counters are 32-bit: feed and drain in chunks.
  std::size_t in_done = 0;
  std::size_t out_done = 0;
  int status = Z_OK;
  std::byte spare[1];
  while (status == Z_OK) {
    const std::size_t in_chunk = std::min<std::size_t>(input.size() - in_done, 1u << 30);
    stream.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(input.data() + in_done));
    stream.avail_in = static_cast<uInt>(in_chunk);
    const bool output_full = out_done == out.size();
    // Once the declared size is reached, one more byte of room shows whether it lies.
    stream.next_out = reinterpret_cast<Bytef*>(output_full ? spare : out.data() + out_done);
    stream.avail_out =
        output_full ? 1u
                    : static_cast<uInt>(std::min<std::size_t>(out.size() - out_done, 1u << 30));
    const uInt in_before = stream.avail_in;
    const uInt out_before = stream.avail_out;
    status = inflate(&stream, Z_NO_FLUSH);
    in_done += in_before - stream.avail_in;
    const std::size_t produced = out_before - stream.avail_out;
    if (output_full && produced > 0) {
      inflateEnd(&stream);
      throw Error(field + "inflates past its declared size of " + std::to_string(entry.size) +
                  " bytes");
    }
    out_done += produced;
    if (status == Z_BUF_ERROR) break;  // no progress possible: the input ran out
  }
  inflateEnd(&stream);
  if (status != Z_STREAM_END) throw Error(field + "corrupt deflate stream");
  if (out_done != out.size()) {
    throw Error(field + "inflates to " + std::to_string(out_done) + " bytes, not the declared " +
                std::to_string(entry.size));
  }
  if (crc_of(out) != entry.crc32) throw Error(field + "corrupt (CRC-32 mismatch)");
  return out;
}

}  // namespace pv
