// A single-threaded Modbus TCP server: poll() on the listening socket, the PLCs' connections and
// the sink's wake-up eventfd; each request is answered from one register mapping, which the
// thread updates from the journal before it answers.
#include "station/modbus_sink.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <vector>

#include <arpa/inet.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/log.h>

namespace pv::station {
namespace {

constexpr int kHeaderLength = 7;  // Modbus TCP's MBAP header; the function code follows

std::uint16_t capped(double value) {
  if (!std::isfinite(value)) return 65535;
  return static_cast<std::uint16_t>(std::clamp(std::round(value), 0.0, 65535.0));
}

double number(const nlohmann::json& record, const char* field) {
  const auto found = record.find(field);
  return found != record.end() && found->is_number() ? found->get<double>() : NAN;
}

class ModbusPlcServer final : public JournalSink {
 public:
  ModbusPlcServer(const ModbusSink& sink, const Journal& journal,
                  const std::filesystem::path& position_file, const LaneSignals* signals)
      : JournalSink(journal, position_file,
                    "modbus sink " + sink.address + ":" + std::to_string(sink.port)),
        sink_(sink),
        signals_(signals) {
    context_ = modbus_new_tcp(sink.address.c_str(), sink.port);
    mapping_ = modbus_mapping_new(kModbusCoils, 0, kModbusRegisters, 0);
    if (context_ == nullptr || mapping_ == nullptr) {
      release();
      throw Error(name_ + ": cannot set up a Modbus server");
    }
    modbus_set_indication_timeout(context_, 1, 0);  // a client that stops mid-request
    listener_ = modbus_tcp_listen(context_, sink.max_clients);
    if (listener_ < 0) {
      const std::string why = std::strerror(errno);
      release();
      throw Error(name_ + ": cannot listen (" + why + ")");
    }
    sockaddr_in address{};
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    log::info("modbus sink: listening on " + sink.address + ":" + std::to_string(port_) +
              (sink.handshake ? " (with the acknowledge handshake)" : ""));
    connected_ = true;
    start();
  }

  ~ModbusPlcServer() override {
    stop_thread();
    release();
  }

  int port() const { return port_; }

 private:
  void release() {
    for (const int fd : clients_) ::close(fd);
    clients_.clear();
    if (listener_ >= 0) ::close(listener_);
    listener_ = -1;
    if (mapping_ != nullptr) modbus_mapping_free(mapping_);
    mapping_ = nullptr;
    if (context_ != nullptr) modbus_free(context_);
    context_ = nullptr;
  }

  // A PLC that is not there holds nothing up: a stop ends the thread at once (the journal keeps
  // what it has not acknowledged).
  void deliver() override {
    while (!stop_requested()) {
      show();
      std::vector<pollfd> fds{{.fd = listener_, .events = POLLIN, .revents = 0}};
      for (const int fd : clients_) fds.push_back({.fd = fd, .events = POLLIN, .revents = 0});
      wait(100, fds);  // 100 ms: the heartbeat's resolution
      if ((fds[0].revents & POLLIN) != 0) accept_client();
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        if (!answer(fds[i].fd)) {
          ::close(fds[i].fd);
          clients_.erase(std::remove(clients_.begin(), clients_.end(), fds[i].fd), clients_.end());
        }
      }
    }
  }

  void accept_client() {
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    if (static_cast<int>(clients_.size()) >= sink_.max_clients) {
      ::close(fd);  // more PLCs than configured
      return;
    }
    clients_.push_back(fd);
  }

  // One request from `fd`; false when the connection is done.
  bool answer(int fd) {
    std::uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    modbus_set_socket(context_, fd);
    const int length = modbus_receive(context_, query);
    if (length < 0) return false;
    if (length == 0) return true;  // not for this unit
    show();
    if (!write_allowed(query, length)) {
      modbus_reply_exception(context_, query, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
      return true;
    }
    const std::uint16_t before = mapping_->tab_registers[kModbusAcknowledge];
    if (modbus_reply(context_, query, length, mapping_) < 0) return false;
    if (mapping_->tab_registers[kModbusAcknowledge] != before || is_write(query[kHeaderLength])) {
      acknowledged(mapping_->tab_registers[kModbusAcknowledge]);
    }
    return true;
  }

  static bool is_write(std::uint8_t function) {
    return function == MODBUS_FC_WRITE_SINGLE_COIL || function == MODBUS_FC_WRITE_SINGLE_REGISTER ||
           function == MODBUS_FC_WRITE_MULTIPLE_COILS ||
           function == MODBUS_FC_WRITE_MULTIPLE_REGISTERS ||
           function == MODBUS_FC_WRITE_AND_READ_REGISTERS ||
           function == MODBUS_FC_MASK_WRITE_REGISTER;
  }

  // Reads of anything; writes of the acknowledge register alone.
  static bool write_allowed(const std::uint8_t* query, int length) {
    if (length < kHeaderLength + 5) return !is_write(query[kHeaderLength]);
    const std::uint8_t function = query[kHeaderLength];
    if (!is_write(function)) return true;
    const int address = (query[kHeaderLength + 1] << 8) | query[kHeaderLength + 2];
    if (function == MODBUS_FC_WRITE_SINGLE_REGISTER) return address == kModbusAcknowledge;
    if (function == MODBUS_FC_WRITE_MULTIPLE_REGISTERS) {
      const int count = (query[kHeaderLength + 3] << 8) | query[kHeaderLength + 4];
      return address == kModbusAcknowledge && count == 1;
    }
    return false;
  }

  void acknowledged(std::uint16_t value) {
    if (!sink_.handshake || shown_ == 0) return;
    if (value == static_cast<std::uint16_t>(shown_ & 0xffff)) {
      acknowledge(shown_);
      show();
    }
  }

  // The registers for the result to show: with the handshake the first not acknowledged, else
  // the latest.
  void show() {
    const std::uint64_t recorded = journal_.size();
    std::uint64_t seq = 0;
    if (sink_.handshake) {
      seq = std::min(delivered() + 1, recorded);
      if (seq <= delivered()) seq = delivered();  // all acknowledged: keep showing the last
    } else {
      seq = recorded;
      if (recorded > delivered()) acknowledge(recorded);
    }
    std::uint16_t* r = mapping_->tab_registers;
    if (seq != shown_) {
      shown_ = seq;
      std::fill(r, r + kModbusAcknowledge, 0);
      if (seq > 0) {
        const auto record = nlohmann::json::parse(journal_.read(seq), nullptr, false);
        const std::string verdict =
            record.is_object() && record.contains("verdict") && record["verdict"].is_string()
                ? record["verdict"].get<std::string>()
                : "error";
        result_ = verdict == "normal" ? 1 : verdict == "anomalous" ? 2 : 3;
        r[0] = static_cast<std::uint16_t>(seq & 0xffff);
        r[1] = static_cast<std::uint16_t>((seq >> 16) & 0xffff);
        r[2] = static_cast<std::uint16_t>(result_);
        r[4] = capped(number(record, "normalized") * 1000);
        r[5] = capped(number(record, "score") * 100);
        r[6] = capped(number(record, "threshold") * 100);
      }
    }
    const bool heartbeat = (std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::steady_clock::now().time_since_epoch())
                                .count() &
                            1) != 0;
    const bool waiting = sink_.handshake && seq > delivered();
    std::uint16_t flags = 0;
    if (seq > 0) flags |= static_cast<std::uint16_t>(1u << (result_ - 1));
    if (signals_ != nullptr && signals_->busy) flags |= 1u << 3;
    if (signals_ != nullptr && signals_->fault) flags |= 1u << 4;
    if (waiting) flags |= 1u << 5;
    if (heartbeat) flags |= 1u << 6;
    r[3] = flags;
    r[7] =
        capped(static_cast<double>(recorded - std::min(recorded, delivered() + (waiting ? 1 : 0))));
    for (int bit = 0; bit < kModbusCoils; ++bit) {
      mapping_->tab_bits[bit] = static_cast<std::uint8_t>((flags >> bit) & 1u);
    }
    save_position_due();
  }

  const ModbusSink sink_;
  const LaneSignals* signals_;
  modbus_t* context_ = nullptr;
  modbus_mapping_t* mapping_ = nullptr;
  int listener_ = -1;
  int port_ = 0;
  std::vector<int> clients_;
  std::uint64_t shown_ = 0;
  int result_ = 0;
};

}  // namespace

std::unique_ptr<Sink> start_modbus_sink(const ModbusSink& sink, const Journal& journal,
                                        const std::filesystem::path& position_file,
                                        const LaneSignals* signals, int* bound_port) {
  auto server = std::make_unique<ModbusPlcServer>(sink, journal, position_file, signals);
  if (bound_port != nullptr) *bound_port = server->port();
  return server;
}

}  // namespace pv::station
