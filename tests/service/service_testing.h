// Helpers shared by the service tests: a trained and indexed fixture model, the service on a free
// port, and raw HTTP over a socket for what a well-behaved client library would never send.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <patchvec/service.h>

#include "cli/run.h"
#include "testing.h"

namespace pv::testing {

// A trained model (the fixture category, resnet18) indexed into `store_args`.
inline void prepare_models(const std::filesystem::path& models, const std::string& store_args) {
  const std::string weights = (fixture_dir() / "patchcore" / "resnet18.safetensors").string();
  const CommandResult train = patchvec("train -q --data " + patchcore_data() +
                                       " --category synthetic --backbone resnet18 " + "--weights " +
                                       weights + " --out " + models.string());
  ASSERT_EQ(train.exit_code, 0) << train.output;
  const CommandResult index = patchvec("index -q --model " + (models / "synthetic.pvm").string() +
                                       " --data " + patchcore_data() + " " + store_args);
  ASSERT_EQ(index.exit_code, 0) << index.output;
}

// The service on a free port, served by a thread, stopped on destruction.
class RunningService {
 public:
  explicit RunningService(ServiceOptions options) : service_(std::move(options)) {
    port_ = service_.bind();
    thread_ = std::thread([this] { service_.serve(); });
  }
  ~RunningService() {
    service_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c;
  }

 private:
  InspectionService service_;
  int port_ = 0;
  std::thread thread_;
};

// GET /healthz until it answers `status` (readiness is checked in the background every second),
// for at most `timeout`; the last answer.
inline httplib::Result health_when(httplib::Client& client, int status,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  httplib::Result r = client.Get("/healthz");
  while ((!r || r->status != status) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    r = client.Get("/healthz");
  }
  return r;
}

inline nlohmann::json json_of(const httplib::Result& r) {
  return nlohmann::json::parse(r->body);
}

// Percent-encodes everything but unreserved characters (RFC 3986).
inline std::string url_encode(const std::string& text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// --- raw HTTP --------------------------------------------------------------------------------

inline int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline void send_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

// True when `out` holds a whole response with a Content-Length.
inline bool complete(const std::string& out) {
  const auto end = out.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  const auto at = out.find("Content-Length: ");
  if (at == std::string::npos || at > end) return false;
  return out.size() >= end + 4 + std::stoul(out.substr(at + 16));
}

// What the server sends until a whole response arrived, it closes the connection, or `timeout`
// passes.
inline std::string read_response(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!complete(out)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

// Sends `request` on a new connection and returns the response (all of it, up to `timeout`).
inline std::string exchange(int port, const std::string& request,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const int fd = connect_to(port);
  if (fd < 0) return "";
  send_all(fd, request);
  const std::string response = read_response(fd, timeout);
  ::close(fd);
  return response;
}

// A TCP relay on 127.0.0.1 to another port of this machine, which can turn into a black hole:
// connections stay open and new ones are accepted, but no byte passes any more (a database
// behind a dead link). Bounded: its thread polls in 50 ms slices and stops on destruction.
class TcpRelay {
 public:
  explicit TcpRelay(int target_port) : target_(target_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 64) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("TcpRelay: cannot listen");
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~TcpRelay() {
    stopping_ = true;
    thread_.join();
    for (const auto& [a, b] : pairs_) ::close(a), ::close(b);
    for (const int fd : held_) ::close(fd);
    ::close(listener_);
  }
  int port() const { return port_; }
  void black_hole() { black_hole_ = true; }

 private:
  void run() {
    std::array<char, 65536> buffer{};
    while (!stopping_) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      const bool passing = !black_hole_;
      if (passing) {
        for (const auto& [a, b] : pairs_)
          fds.push_back({a, POLLIN, 0}), fds.push_back({b, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client >= 0 && black_hole_) {
          held_.push_back(client);  // accepted, never answered
        } else if (client >= 0) {
          const int server = connect_to(target_);
          if (server < 0) {
            ::close(client);
          } else {
            pairs_.emplace_back(client, server);
          }
        }
      }
      if (!passing) continue;
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const auto& pair = pairs_[(i - 1) / 2];
        const int from = fds[i].fd, to = from == pair.first ? pair.second : pair.first;
        const ssize_t n = ::recv(from, buffer.data(), buffer.size(), 0);
        if (n > 0) send_all(to, std::string(buffer.data(), static_cast<std::size_t>(n)));
      }
    }
  }

  int target_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_ = false;
  std::atomic<bool> black_hole_ = false;
  std::vector<std::pair<int, int>> pairs_;  // client, server
  std::vector<int> held_;
  std::thread thread_;
};

inline int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return 0;
  return std::stoi(response.substr(9, 3));
}

inline std::string body_of(const std::string& response) {
  const auto at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

}  // namespace pv::testing
