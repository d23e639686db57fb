#include "weights/download.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/version.h>

#include "util/progress.h"
#include "util/sha256.h"

namespace pv::weights {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

constexpr std::size_t kMiB = 1 << 20;

// State shared with libcurl's callbacks.
struct Transfer {
  CURL* curl = nullptr;
  int fd = -1;
  Sha256 hash;
  std::int64_t bytes = 0;
  std::int64_t max_bytes = 0;
  std::string failure;  // why a callback stopped the transfer
  bool progress = true;
  std::string label;
  std::optional<ProgressBar> bar;
  std::size_t shown_mib = 0;
  curl_off_t length = -1;  // announced by the server; -1 = unknown
  bool started = false;

  std::size_t write(const char* data, std::size_t size) {
    if (!started) {
      started = true;
      curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
      if (length > max_bytes) {
        failure = "the server announces " + std::to_string(length) + " bytes, more than the " +
                  std::to_string(max_bytes) + " allowed";
        return 0;
      }
      if (progress) {
        bar.emplace(label, length > 0 ? static_cast<std::size_t>((length + kMiB - 1) / kMiB) : 0,
                    "MiB");
      }
    }
    if (bytes + static_cast<std::int64_t>(size) > max_bytes) {
      failure = "more than the " + std::to_string(max_bytes) + " bytes allowed";
      return 0;
    }
    for (std::size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        failure = std::string("cannot write to the cache: ") + std::strerror(errno);
        return 0;
      }
      done += static_cast<std::size_t>(n);
    }
    hash.update(std::as_bytes(std::span(data, size)));
    bytes += static_cast<std::int64_t>(size);
    if (bar) {
      // Whole MiB received; the last, partial one counts once everything announced arrived.
      const std::size_t mib =
          static_cast<std::size_t>(bytes == length ? bytes + kMiB - 1 : bytes) / kMiB;
      bar->advance(mib - shown_mib);
      shown_mib = mib;
    }
    return size;
  }
};

std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) {
  return static_cast<Transfer*>(user)->write(data, size * count);
}

// A temporary file beside `target`, removed unless released.
class TemporaryFile {
 public:
  explicit TemporaryFile(const std::filesystem::path& target) {
    std::string name = target.filename().string();
    name.insert(0, 1, '.');
    name.append(".part-XXXXXX");
    std::string pattern = (target.parent_path() / name).string();
    fd_ = ::mkstemp(pattern.data());
    if (fd_ < 0) {
      throw Error("cannot create a file in " + target.parent_path().string() + ": " +
                  std::strerror(errno));
    }
    path_ = pattern;
  }
  ~TemporaryFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  int fd() const { return fd_; }
  // Makes the file durable and gives it the final name.
  void commit(const std::filesystem::path& target) {
    if (::fsync(fd_) != 0 || ::fchmod(fd_, 0644) != 0) {
      throw Error("cannot write " + target.string() + ": " + std::strerror(errno));
    }
    ::close(fd_);
    fd_ = -1;
    if (::rename(path_.c_str(), target.c_str()) != 0) {
      throw Error("cannot rename into " + target.string() + ": " + std::strerror(errno));
    }
    path_.clear();
  }

 private:
  int fd_ = -1;
  std::filesystem::path path_;
};

std::string host_of(const std::string& url) {
  const auto start = url.find("://");
  if (start == std::string::npos) return url;
  const auto end = url.find_first_of("/:?#", start + 3);
  return url.substr(start + 3, end == std::string::npos ? std::string::npos : end - start - 3);
}

}  // namespace

bool hash_matches(const std::string& sha256, const std::string& expected) {
  return !expected.empty() && expected.size() <= sha256.size() && sha256.starts_with(expected);
}

Downloaded download(const std::string& url, const std::filesystem::path& target,
                    const std::string& expected_sha256, const FetchOptions& options) {
  global_init();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) throw Error("cannot start libcurl");
  TemporaryFile temporary(target);
  Transfer transfer{.curl = curl.get(),
                    .fd = temporary.fd(),
                    .max_bytes = options.max_bytes,
                    .progress = options.progress,
                    .label = "download"};
  char error_text[CURL_ERROR_SIZE] = "";
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options.connect_timeout_seconds * 1000));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.stall_timeout_seconds));
  const std::string user_agent = std::string("patchvec/") + version();
  curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_text);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  const CURLcode code = curl_easy_perform(c);
  if (transfer.bar) transfer.bar->finish();

  const std::string what = "downloading " + url + " failed: ";
  const std::string nothing_kept = " (nothing was kept in the cache)";
  if (code != CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    std::string reason;
    switch (code) {
      case CURLE_COULDNT_RESOLVE_HOST:
        reason = "cannot resolve host " + host_of(url) + " (no network or no DNS?)";
        break;
      case CURLE_COULDNT_CONNECT:
        reason = "cannot connect to " + host_of(url) + " (" + error_text + ")";
        break;
      case CURLE_OPERATION_TIMEDOUT:
        reason = std::string("timed out (") + error_text + ")";
        break;
      case CURLE_HTTP_RETURNED_ERROR:
        reason = "the server answered HTTP " + std::to_string(status);
        break;
      case CURLE_PARTIAL_FILE:
        reason = "the transfer ended early after " + std::to_string(transfer.bytes) +
                 " bytes (truncated)";
        break;
      case CURLE_WRITE_ERROR:
        reason = transfer.failure.empty() ? "cannot write the file" : transfer.failure;
        break;
      default:
        reason = error_text[0] != '\0' ? error_text : curl_easy_strerror(code);
    }
    throw WeightsUnavailable(what + reason + nothing_kept, reason);
  }
  const std::string sha256 = transfer.hash.hex();
  if (!expected_sha256.empty() && !hash_matches(sha256, expected_sha256)) {
    const bool prefix = expected_sha256.size() < 64;
    throw WeightsUnavailable(
        what + "its SHA-256 is " + sha256 + ", expected " + (prefix ? "one starting with " : "") +
            expected_sha256 +
            (prefix ? " (torchvision's convention: the file name ends in -<first hex digits of "
                      "its SHA-256>; a #sha256=<64 hex> fragment on the URL states the hash "
                      "instead)"
                    : "") +
            nothing_kept,
        "it does not have the expected SHA-256");
  }
  temporary.commit(target);
  return {sha256, transfer.bytes};
}

}  // namespace pv::weights
