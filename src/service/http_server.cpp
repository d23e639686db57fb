#include "service/http_server.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pv::service {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSlice = std::chrono::milliseconds(50);  // how often waits look for stop()
// A reserve connection younger than this is not given up: its request may be on its way.
constexpr auto kEvictionAge = std::chrono::milliseconds(50);
// How long a newcomer waits for an evicted reserve connection to go.
constexpr auto kEvictionWait = std::chrono::milliseconds(300);

thread_local ConnectionState* current = nullptr;
thread_local bool overflowing = false;  // running on the accepting thread: no worker was free

// One thread per connection, started when first needed, at most `limit`; a connection that finds
// none free runs on the accepting thread, where it is refused at once (overflowing).
class ConnectionThreads final : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(std::size_t limit) : limit_(limit) {}

  void enqueue(std::function<void()> task) override {
    {
      std::unique_lock lock(mutex_);
      if (idle_ > jobs_.size() || threads_.size() < limit_) {
        jobs_.push_back(std::move(task));
        if (idle_ < jobs_.size()) threads_.emplace_back([this] { work(); });
        ready_.notify_one();
        return;
      }
    }
    overflowing = true;
    task();
    overflowing = false;
  }

  void shutdown() override {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex_);
        ++idle_;
        ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        --idle_;
        if (jobs_.empty()) return;  // stopping, nothing left
        task = std::move(jobs_.front());
        jobs_.pop_front();
      }
      task();
    }
  }

  std::size_t limit_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool stopping_ = false;
};

std::string address_of(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (address.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(address).sin_addr, text,
                sizeof text);
  } else if (address.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr, text,
                sizeof text);
  }
  return text;
}

int port_of(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  if (address.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  return 0;
}

// A socket read within a deadline for the whole request, in httplib's Stream interface. Reads
// are buffered (httplib reads request lines a byte at a time).
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(int sock, const std::atomic<bool>& stopping, std::chrono::seconds write_timeout,
                 ConnectionState& state)
      : sock_(sock), stopping_(stopping), write_timeout_(write_timeout), state_(state) {}

  void start_request(Clock::time_point deadline) {
    deadline_ = deadline;
    state_.deadline_passed = false;
    answered_ = false;
  }

  // Something of a response was sent since start_request().
  bool answered() const { return answered_; }

  // Waits until a byte can be read (or is buffered), the deadline passes, or the server stops.
  bool wait_readable(Clock::time_point until) const {
    if (begin_ < end_) return true;
    return wait(POLLIN, until);
  }

  bool is_readable() const override {
    if (wait_readable(deadline_)) return true;
    if (Clock::now() >= deadline_) state_.deadline_passed = true;
    return false;
  }
  bool is_writable() const override { return wait(POLLOUT, Clock::now() + write_timeout_); }

  ssize_t read(char* out, std::size_t size) override {
    if (begin_ == end_) {
      if (!wait_readable(deadline_)) {
        if (Clock::now() >= deadline_) state_.deadline_passed = true;
        return -1;
      }
      ssize_t n;
      do {
        n = ::recv(sock_, buffer_.data(), buffer_.size(), 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      begin_ = 0;
      end_ = static_cast<std::size_t>(n);
    }
    const std::size_t n = std::min(size, end_ - begin_);
    std::memcpy(out, buffer_.data() + begin_, n);
    begin_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* data, std::size_t size) override {
    if (!is_writable()) return -1;
    answered_ = true;
    ssize_t n;
    do {
      n = ::send(sock_, data, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    endpoint(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    endpoint(::getsockname, ip, port);
  }

  socket_t socket() const override { return sock_; }

 private:
  // The address getpeername or getsockname gives for this socket.
  void endpoint(int (*get)(int, sockaddr*, socklen_t*), std::string& ip, int& port) const {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    get(sock_, reinterpret_cast<sockaddr*>(&address), &length);
    ip = address_of(address);
    port = port_of(address);
  }

  // poll() in slices, so that a stopping server does not wait for its slowest client.
  bool wait(short events, Clock::time_point until) const {
    for (;;) {
      if (stopping_ || state_.evicted) return false;
      // Rounded up: a wait that returns false for want of time has really reached `until`.
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{.fd = sock_, .events = events, .revents = 0};
      const int ready = ::poll(&p, 1, static_cast<int>(std::min(left, kSlice).count()));
      if (ready > 0) return true;
      if (ready < 0 && errno != EINTR) return false;
    }
  }

  int sock_;
  const std::atomic<bool>& stopping_;
  std::chrono::seconds write_timeout_;
  ConnectionState& state_;
  Clock::time_point deadline_{};
  std::array<char, 16384> buffer_{};
  std::size_t begin_ = 0, end_ = 0;
  bool answered_ = false;
};

// httplib parses application/x-www-form-urlencoded bodies as forms and refuses them above 8 KB,
// but it is what `curl --data-binary @file` sends by default: bodies are bytes here.
void read_bodies_as_bytes(httplib::Request& request) {
  if (current != nullptr) current->head_read = true;
  const auto type = request.headers.find("Content-Type");
  if (type != request.headers.end() &&
      type->second.starts_with("application/x-www-form-urlencoded")) {
    type->second = "application/octet-stream";
  }
}

// A complete response for a connection that is not served (further). With `linger`, a short
// lingering close follows: closing with the client's bytes unread sends a reset, which can destroy
// the response before the client reads it. (Not on refusals at admission, which may run on the
// accepting thread.)
void refuse(int sock, int status, const char* reason, const std::string& message,
            bool linger = false) {
  const std::string body = "{\"error\":\"" + message + "\"}";
  const std::string response =
      "HTTP/1.1 " + std::to_string(status) + " " + reason +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body;
  ::send(sock, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (!linger) return;
  ::shutdown(sock, SHUT_WR);
  const auto until = Clock::now() + std::chrono::milliseconds(200);
  std::array<char, 4096> discard{};
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
    pollfd p{.fd = sock, .events = POLLIN, .revents = 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    if (::recv(sock, discard.data(), discard.size(), MSG_DONTWAIT) <= 0) break;
  }
}

}  // namespace

GuardedServer::GuardedServer(const ConnectionLimits& limits) : limits_(limits) {
  // A thread for every connection and reserve connection, and as many again for newcomers
  // waiting in admit() for an idle reserve connection to give way (without a thread of its own a
  // newcomer would be refused before it could take that place).
  const auto threads = static_cast<std::size_t>(limits.max_connections) +
                       2 * static_cast<std::size_t>(limits.reserve_connections);
  new_task_queue = [threads] { return new ConnectionThreads(threads); };
  set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listening_ = sock;
  });
}

int GuardedServer::bind(const std::string& host, int port) {
  const int bound = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
  // Listening again on a listening socket only sets its backlog.
  if (bound >= 0 && listening_ >= 0) ::listen(listening_, SOMAXCONN);
  return bound;
}

void GuardedServer::halt() {
  stopping_ = true;
  stop();
}

ConnectionState* GuardedServer::connection() {
  return current;
}

GuardedServer::Admission GuardedServer::admit(ConnectionState& state) {
  std::unique_lock lock(mutex_);
  if (overflowing) return Admission::kTooMany;
  const bool client_full = per_client_[state.client] >= limits_.max_connections_per_client;
  if (active_ < limits_.max_connections) {
    ++active_;
    if (client_full) return Admission::kOverClientLimit;  // health only: never refused by the cap
    ++per_client_[state.client];
    return Admission::kNormal;
  }
  const auto limit = static_cast<std::size_t>(limits_.reserve_connections);
  // Every reserve connection is taken: the oldest one still waiting for its request gives way,
  // as soon as it is old enough (a burst of idle connections just before this one is given up
  // after kEvictionAge, not refused the newcomer).
  const auto until = Clock::now() + kEvictionWait;
  bool evicted_one = false;
  while (reserve_.size() >= limit) {
    const auto now = Clock::now();
    if (now >= until) break;
    auto look_again = until;
    for (auto& [victim, since] : reserve_) {
      if (evicted_one || victim->head_read || victim->evicted) continue;
      if (now - since >= kEvictionAge) {
        victim->evicted = true;
        evicted_one = true;
      } else {
        look_again = std::min(look_again, since + kEvictionAge);
      }
    }
    reserve_freed_.wait_until(lock, evicted_one ? until : look_again);
  }
  if (reserve_.size() < limit) {
    reserve_.emplace_back(&state, Clock::now());
    return client_full ? Admission::kReserveForClient : Admission::kReserve;
  }
  return client_full ? Admission::kTooManyFromClient : Admission::kTooMany;
}

void GuardedServer::release(ConnectionState& state, Admission admission) {
  const std::lock_guard lock(mutex_);
  if (admission == Admission::kOverClientLimit) {
    --active_;
    return;
  }
  if (admission != Admission::kNormal) {
    std::erase_if(reserve_, [&](const auto& entry) { return entry.first == &state; });
    reserve_freed_.notify_all();
    return;
  }
  --active_;
  if (--per_client_[state.client] == 0) per_client_.erase(state.client);
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  const std::chrono::seconds write_timeout(write_timeout_sec_ > 0 ? write_timeout_sec_ : 1);
  ConnectionState state;
  DeadlineStream stream(sock, stopping_, write_timeout, state);
  int port = 0;
  stream.get_remote_ip_and_port(state.client, port);
  const Admission admission = admit(state);
  bool served = false;
  if (admission == Admission::kTooManyFromClient) {
    refuse(sock, 429, "Too Many Requests",
           "too many connections from " + state.client + " (at most " +
               std::to_string(limits_.max_connections_per_client) + ")");
  } else if (admission == Admission::kTooMany) {
    refuse(sock, 503, "Service Unavailable", "too many connections; try again");
  } else {
    state.reserve = admission != Admission::kNormal;
    state.busy_status =
        admission == Admission::kReserveForClient || admission == Admission::kOverClientLimit ? 429
                                                                                              : 503;
    const std::chrono::seconds timeout(state.reserve ? limits_.reserve_timeout_seconds
                                                     : limits_.request_timeout_seconds);
    current = &state;
    std::size_t remaining = std::max<std::size_t>(keep_alive_max_count_, 1);
    bool first = true;
    while (remaining-- > 0 && !stopping_) {
      // The first request's deadline runs from the connection; later ones wait for a first byte
      // up to the keep-alive timeout, and their deadline runs from it.
      const auto now = Clock::now();
      if (!first && !stream.wait_readable(now + std::chrono::seconds(keep_alive_timeout_sec_))) {
        break;
      }
      stream.start_request(first ? now + timeout : Clock::now() + timeout);
      first = false;
      state.close = false;
      bool closed = false;
      served = process_request(stream, remaining == 0, closed, read_bodies_as_bytes);
      // httplib gives up silently on a request line that did not arrive in time: say why.
      if (!served && state.deadline_passed && !stream.answered()) {
        refuse(sock, 408, "Request Timeout",
               "the request did not arrive in time (--request-timeout)", /*linger=*/true);
      }
      if (!served || closed || state.close || state.reserve) break;
    }
    current = nullptr;
    release(state, admission);
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return served;
}

}  // namespace pv::service
