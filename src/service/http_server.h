// cpp-httplib's server with the defences a service on a network needs and httplib 0.11 lacks:
//
//   - a deadline for a whole request (headers and body), not only for each read: a client that
//     sends a byte a second is cut off when its request_timeout is over (408);
//   - at most max_connections_per_client connections from one address and max_connections in
//     all, each on a thread of its own while it lasts;
//   - a client over its own limit is still served while the server has room, but only for the
//     health and metrics routes and with a short deadline (other routes: 429): behind a load
//     balancer every health check comes from one address and must never meet that limit;
//   - reserve_connections more for what comes beyond max_connections, served the same way (other
//     routes: 429 when the client is over its own limit, else 503). When they are taken too, the
//     oldest one still waiting for its request gives way to the newcomer: a health check, sent
//     whole at once, gets through whatever slow clients hold. Behind a load balancer every
//     connection comes from its address: raise the per-client limit there and let the balancer
//     limit clients.
//   - bodies are bytes: a form content type (curl --data-binary's default) is not parsed.
//
// Routes, handlers and everything else are httplib's. Thread-safety: as httplib::Server.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>

namespace pv::service {

struct ConnectionLimits {
  int request_timeout_seconds = 30;  // to receive one whole request, headers and body
  int reserve_timeout_seconds = 1;   // the same on reserve connections
  int max_connections = 64;
  int max_connections_per_client = 8;  // per remote address
  int reserve_connections = 4;         // beyond max_connections: health and metrics only
};

// What the connection carrying the request being handled is; see GuardedServer::connection().
struct ConnectionState {
  std::string client;            // remote address
  bool reserve = false;          // a reserve connection: health and metrics only
  int busy_status = 503;         // what a reserve connection answers for other routes
  bool deadline_passed = false;  // reading the request ran out of time
  bool close = false;            // close after this response (set it when a body is left unread)
  std::atomic<bool> head_read = false;  // a request line and headers arrived
  std::atomic<bool> evicted = false;    // a reserve connection given up for a newer one
};

class GuardedServer : public httplib::Server {
 public:
  explicit GuardedServer(const ConnectionLimits& limits);

  // The connection of the request this thread is handling, for handlers and httplib's
  // pre-routing, error and logger hooks; nullptr on any other thread.
  static ConnectionState* connection();

  const ConnectionLimits& limits() const { return limits_; }

  // Binds `host`:`port` (0: any free port) and listens with the system's largest backlog
  // (httplib's own is 5: a burst of connections overflows it and the kernel drops SYNs, which
  // clients send again only a second later). Returns the port, or -1 when it cannot bind.
  int bind(const std::string& host, int port);

  // Serves one connected socket on this thread until its client is done, then closes it.
  void serve_socket(int sock) { process_and_close_socket(sock); }

  // Stops listening and cuts waiting connections short (use instead of httplib's stop()).
  void halt();

 private:
  // kOverClientLimit: a client over its own limit while the server has room; served like a
  // reserve connection (health and metrics only, a short deadline, 429 for other routes) but not
  // taking a reserve place, so that a health check never meets the per-client cap.
  enum class Admission {
    kNormal,
    kOverClientLimit,
    kReserveForClient,
    kReserve,
    kTooManyFromClient,
    kTooMany
  };
  Admission admit(ConnectionState& state);
  void release(ConnectionState& state, Admission admission);
  bool process_and_close_socket(socket_t sock) override;

  ConnectionLimits limits_;
  std::atomic<bool> stopping_ = false;
  std::mutex mutex_;
  std::condition_variable reserve_freed_;
  int active_ = 0;
  int listening_ = -1;  // the socket httplib bound last (set in its socket options hook)
  std::vector<std::pair<ConnectionState*, std::chrono::steady_clock::time_point>> reserve_;
  std::map<std::string, int> per_client_;
};

}  // namespace pv::service
