// One thread per MQTT sink runs libmosquitto's network loop itself (poll on the client's socket
// and the sink's wake-up eventfd), so that a new record is published at once and everything about
// the connection happens on one thread. A lost connection destroys the client: nothing of it
// survives in memory, and the next one starts from the position acknowledged so far.
#include "station/mqtt_sink.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include <mosquitto.h>
#include <poll.h>

#include <patchvec/error.h>
#include <patchvec/log.h>

namespace pv::station {
namespace {

constexpr std::size_t kInFlight = 32;  // messages published and not acknowledged, at most
constexpr auto kConnackTimeout = std::chrono::seconds(10);

void init_library() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

std::string describe(const MqttSink& sink) {
  return std::string("mqtt sink ") + (sink.tls ? "mqtts://" : "mqtt://") + sink.host + ":" +
         std::to_string(sink.port) + "/" + sink.topic;
}

class MqttPublisher final : public JournalSink {
 public:
  MqttPublisher(const MqttSink& sink, const MqttIdentity& identity, const Journal& journal,
                const std::filesystem::path& position_file)
      : JournalSink(journal, position_file, describe(sink)),
        sink_(sink),
        identity_(identity),
        status_topic_(sink.topic + "/status") {
    init_library();
    next_ = delivered() + 1;
    start();
  }

  ~MqttPublisher() override { stop_thread(); }

 private:
  void deliver() override {
    auto backoff = std::chrono::seconds(1);
    auto next_attempt = std::chrono::steady_clock::now();
    // A stop with no connection ends at once: the next start delivers what is left.
    while (!stopping() && !(client_ == nullptr && stop_requested())) {
      if (client_ == nullptr) {
        if (std::chrono::steady_clock::now() < next_attempt) {
          wait(100);
          continue;
        }
        if (!connect()) {
          next_attempt = std::chrono::steady_clock::now() + backoff;
          backoff = std::min(backoff * 2, std::chrono::seconds(30));
          continue;
        }
        backoff = std::chrono::seconds(1);
      }
      if (connected_) publish_pending();
      if (client_ != nullptr && !connected_ &&
          std::chrono::steady_clock::now() - connect_started_ > kConnackTimeout) {
        lose_connection("no CONNACK from the broker");
      }
      if (client_ != nullptr) poll_client();
      if (client_ != nullptr && mosquitto_loop_misc(client_) != MOSQ_ERR_SUCCESS) {
        lose_connection("keepalive");
      }
      save_position_due();
    }
    if (client_ != nullptr) {
      if (connected_) publish_status("offline");
      mosquitto_disconnect(client_);
      // The status and the disconnect go out with the next writes.
      for (int i = 0; i < 10 && mosquitto_want_write(client_); ++i) {
        if (mosquitto_loop_write(client_, 1) != MOSQ_ERR_SUCCESS) break;
      }
      destroy_client();
    }
  }

  // Waits for the socket, a notify() or 200 ms, then reads and writes what is due.
  void poll_client() {
    const int fd = mosquitto_socket(client_);
    const auto events = static_cast<short>(POLLIN | (mosquitto_want_write(client_) ? POLLOUT : 0));
    const short revents = wait(200, fd, events);
    int rc = MOSQ_ERR_SUCCESS;
    if ((revents & (POLLIN | POLLERR | POLLHUP)) != 0) rc = mosquitto_loop_read(client_, 1);
    if (rc == MOSQ_ERR_SUCCESS && client_ != nullptr && (revents & POLLOUT) != 0) {
      rc = mosquitto_loop_write(client_, 1);
    }
    if (rc != MOSQ_ERR_SUCCESS && client_ != nullptr) lose_connection(mosquitto_strerror(rc));
  }

  bool connect() {
    // Two clients with one id on one broker would throw each other off, again and again.
    std::string client_id = sink_.client_id;
    if (client_id.empty()) {
      client_id = "patchvec-" + identity_.station + "-" + identity_.lane;
      if (identity_.index > 0) client_id.append("-").append(std::to_string(identity_.index));
    }
    client_ = mosquitto_new(client_id.c_str(), true, this);
    if (client_ == nullptr) {
      log::warn(name_ + ": cannot create a client");
      return false;
    }
    mosquitto_int_option(client_, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_callback_set(client_, [](mosquitto*, void* self, int rc) {
      static_cast<MqttPublisher*>(self)->on_connect(rc);
    });
    mosquitto_publish_callback_set(client_, [](mosquitto*, void* self, int mid) {
      static_cast<MqttPublisher*>(self)->on_publish(mid);
    });
    const std::string offline = status_payload("offline");
    mosquitto_will_set(client_, status_topic_.c_str(), static_cast<int>(offline.size()),
                       offline.data(), 1, true);
    if (!sink_.username.empty()) {
      mosquitto_username_pw_set(client_, sink_.username.c_str(),
                                sink_.password.empty() ? nullptr : sink_.password.c_str());
    }
    if (sink_.tls) {
      const int rc = sink_.ca_file.empty()
                         ? mosquitto_int_option(client_, MOSQ_OPT_TLS_USE_OS_CERTS, 1)
                         : mosquitto_tls_set(client_, sink_.ca_file.c_str(), nullptr, nullptr,
                                             nullptr, nullptr);
      if (rc != MOSQ_ERR_SUCCESS) {
        log::warn(name_ + ": TLS set-up: " + mosquitto_strerror(rc));
        destroy_client();
        return false;
      }
    }
    const int rc =
        mosquitto_connect(client_, sink_.host.c_str(), sink_.port, sink_.keepalive_seconds);
    if (rc != MOSQ_ERR_SUCCESS) {
      const std::string why = rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc);
      if (!warned_down_) log::warn(name_ + ": cannot connect (" + why + "); retrying");
      warned_down_ = true;
      destroy_client();
      return false;
    }
    connect_started_ = std::chrono::steady_clock::now();
    return true;
  }

  void on_connect(int rc) {
    if (rc != 0) {
      lose_connection(std::string("refused: ") + mosquitto_connack_string(rc));
      return;
    }
    connected_ = true;
    warned_down_ = false;
    log::info(name_ + ": connected");
    publish_status("online");
  }

  void on_publish(int mid) {
    const auto found = in_flight_.find(mid);
    if (found == in_flight_.end()) return;  // the status
    acknowledged_.insert(found->second);
    in_flight_.erase(found);
    std::uint64_t upto = delivered();
    while (!acknowledged_.empty() && *acknowledged_.begin() == upto + 1) {
      acknowledged_.erase(acknowledged_.begin());
      ++upto;
    }
    acknowledge(upto);
  }

  void publish_pending() {
    const std::uint64_t recorded = journal_.size();
    while (client_ != nullptr && in_flight_.size() < kInFlight && next_ <= recorded) {
      const std::string payload = journal_.read(next_);
      int mid = 0;
      const int rc = mosquitto_publish(client_, &mid, sink_.topic.c_str(),
                                       static_cast<int>(payload.size()), payload.data(), 1, false);
      if (rc != MOSQ_ERR_SUCCESS) {
        lose_connection(mosquitto_strerror(rc));
        return;
      }
      in_flight_[mid] = next_;
      ++next_;
    }
  }

  std::string status_payload(const char* status) const {
    return nlohmann::ordered_json{
        {"station", identity_.station}, {"lane", identity_.lane}, {"status", status}}
        .dump();
  }

  void publish_status(const char* status) {
    const std::string payload = status_payload(status);
    mosquitto_publish(client_, nullptr, status_topic_.c_str(), static_cast<int>(payload.size()),
                      payload.data(), 1, true);
  }

  void lose_connection(const std::string& why) {
    if (connected_) {
      log::warn(name_ + ": connection lost (" + why + "); reconnecting");
      ++reconnects_;
    } else if (!warned_down_) {
      log::warn(name_ + ": " + why + "; retrying");
      warned_down_ = true;
    }
    destroy_client();
  }

  void destroy_client() {
    if (client_ != nullptr) mosquitto_destroy(client_);
    client_ = nullptr;
    connected_ = false;
    in_flight_.clear();
    acknowledged_.clear();
    next_ = delivered() + 1;
  }

  const MqttSink sink_;
  const MqttIdentity identity_;
  const std::string status_topic_;
  // The sink thread's.
  mosquitto* client_ = nullptr;
  std::chrono::steady_clock::time_point connect_started_;
  std::map<int, std::uint64_t> in_flight_;  // message id -> sequence number
  std::set<std::uint64_t> acknowledged_;    // beyond the position, not contiguous yet
  std::uint64_t next_ = 1;
  bool warned_down_ = false;
};

}  // namespace

std::unique_ptr<Sink> start_mqtt_sink(const MqttSink& sink, const MqttIdentity& identity,
                                      const Journal& journal,
                                      const std::filesystem::path& position_file) {
  return std::make_unique<MqttPublisher>(sink, identity, journal, position_file);
}

}  // namespace pv::station
