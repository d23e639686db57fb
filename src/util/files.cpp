#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/files.h>

namespace pv {
namespace {

[[noreturn]] void fail(const std::filesystem::path& path, std::string_view what) {
  throw Error(std::string(what) + " " + path.string() + ": " + std::strerror(errno));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens for reading without blocking on a FIFO or device (O_NONBLOCK), which are then refused:
// only regular files are read, and O_NONBLOCK changes nothing for them.
int open_regular(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(path, "cannot open");
  return fd;
}

std::size_t file_size(int fd, const std::filesystem::path& path) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) fail(path, "cannot stat");
  if (S_ISDIR(info.st_mode)) throw Error(path.string() + " is a folder, not a file");
  if (!S_ISREG(info.st_mode)) {
    throw Error(path.string() + " is not a regular file (a FIFO, socket or device)");
  }
  return static_cast<std::size_t>(info.st_size);
}

std::filesystem::path user_dir(const char* variable, const char* fallback, std::string_view what) {
  if (const char* xdg = std::getenv(variable); xdg != nullptr && xdg[0] == '/') {
    return std::filesystem::path(xdg) / "patchvec" / what;
  }
  const char* home = std::getenv("HOME");
  if (home == nullptr || home[0] != '/') {
    throw Error("no folder for " + std::string(what) + ": set " + variable + " or HOME");
  }
  return std::filesystem::path(home) / fallback / "patchvec" / what;
}

}  // namespace

std::filesystem::path user_cache_dir(std::string_view what) {
  return user_dir("XDG_CACHE_HOME", ".cache", what);
}

std::filesystem::path user_data_dir(std::string_view what) {
  return user_dir("XDG_DATA_HOME", ".local/share", what);
}

std::vector<std::byte> read_file(const std::filesystem::path& path, std::int64_t max_bytes) {
  const Fd fd(open_regular(path));
  const std::size_t size = file_size(fd.get(), path);
  if (max_bytes > 0 && size > static_cast<std::size_t>(max_bytes)) {
    throw Error(path.string() + " is " + std::to_string(size) + " bytes, more than the " +
                std::to_string(max_bytes) + " this use allows");
  }
  std::vector<std::byte> bytes(size);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(path, "cannot read");
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  const Fd fd(open_regular(path));
  size_ = file_size(fd.get(), path);
  if (size_ == 0) return;
  void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (mapped == MAP_FAILED) fail(path, "cannot map");
  data_ = static_cast<const std::byte*>(mapped);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    this->~MappedFile();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  std::random_device entropy;
  temporary_ = target_;
  temporary_ += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(entropy());
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(target_, "cannot create a file beside");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temporary_.c_str());
  }
}

void AtomicFile::write(std::span<const std::byte> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(target_, "cannot write");
    done += static_cast<std::size_t>(n);
  }
}

void AtomicFile::write(std::string_view text) {
  write(std::as_bytes(std::span(text.data(), text.size())));
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail(target_, "cannot flush");
  if (::close(std::exchange(fd_, -1)) != 0) {
    ::unlink(temporary_.c_str());
    fail(target_, "cannot close");
  }
  if (::rename(temporary_.c_str(), target_.c_str()) != 0) {
    const int saved = errno;
    ::unlink(temporary_.c_str());
    errno = saved;
    fail(target_, "cannot replace");
  }
}

}  // namespace pv
