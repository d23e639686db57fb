// File helpers shared by every module: whole-file reads, read-only mappings and atomic writes.
// Every error is a pv::Error naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace pv {

// The whole file. Only regular files are read: a FIFO or device is refused without blocking.
// `max_bytes` (0 = no limit) refuses larger files before reading them.
std::vector<std::byte> read_file(const std::filesystem::path& path, std::int64_t max_bytes = 0);

// $XDG_CACHE_HOME/patchvec/<what> (default ~/.cache/patchvec/<what>): files that can be fetched
// again. Not created here. Throws pv::Error when neither XDG_CACHE_HOME nor HOME is an absolute
// path.
std::filesystem::path user_cache_dir(std::string_view what);
// $XDG_DATA_HOME/patchvec/<what> (default ~/.local/share/patchvec/<what>): files kept for good.
std::filesystem::path user_data_dir(std::string_view what);

// A read-only memory mapping of a whole regular file, unmapped on destruction. Movable, not
// copyable.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Writes a file so that readers see either the old content or the complete new one, never a
// half-written file: bytes go to a temporary file in the same folder, which is fsync'ed and
// renamed over the target by commit(). Destroyed without commit(), it removes the temporary
// file and leaves the target untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  void write(std::span<const std::byte> bytes);
  void write(std::string_view text);
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path temporary_;
  int fd_ = -1;
};

}  // namespace pv
