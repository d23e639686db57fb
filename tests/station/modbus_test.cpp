// The Modbus sink as a PLC sees it: libmodbus's own client on 127.0.0.1.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <modbus/modbus.h>

#include "station/journal.h"
#include "station/modbus_sink.h"
#include "testing.h"

namespace pv::testing {
namespace {

using namespace std::chrono_literals;

std::string key(int n) {
  char text[33];
  std::snprintf(text, sizeof text, "%032x", n + 7);
  return text;
}

nlohmann::ordered_json result(int n) {
  const bool nok = n % 3 == 2;
  return {{"key", key(n)},
          {"verdict", nok ? "anomalous" : "normal"},
          {"score", nok ? 12.5 : 4.25},
          {"threshold", 10.0},
          {"normalized", nok ? 0.75 : 0.25}};
}

class Plc {
 public:
  explicit Plc(int port) : context_(modbus_new_tcp("127.0.0.1", port)) {
    modbus_set_response_timeout(context_, 2, 0);
    EXPECT_EQ(modbus_connect(context_), 0) << modbus_strerror(errno);
  }
  ~Plc() {
    modbus_close(context_);
    modbus_free(context_);
  }
  std::vector<std::uint16_t> registers() {
    std::vector<std::uint16_t> r(station::kModbusRegisters);
    EXPECT_EQ(modbus_read_registers(context_, 0, station::kModbusRegisters, r.data()),
              station::kModbusRegisters)
        << modbus_strerror(errno);
    return r;
  }
  int write(int address, std::uint16_t value) {
    return modbus_write_register(context_, address, value);
  }
  std::vector<std::uint8_t> coils() {
    std::vector<std::uint8_t> bits(station::kModbusCoils);
    EXPECT_EQ(modbus_read_bits(context_, 0, station::kModbusCoils, bits.data()),
              station::kModbusCoils);
    return bits;
  }

 private:
  modbus_t* context_;
};

// Polls until the registers show sequence number `seq`, at most 10 s.
std::vector<std::uint16_t> wait_for(Plc& plc, std::uint64_t seq) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  std::vector<std::uint16_t> r;
  do {
    r = plc.registers();
    if (r[0] == seq) return r;
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return r;
}

void expect_result(const std::vector<std::uint16_t>& r, int n) {
  const bool nok = n % 3 == 2;
  EXPECT_EQ(r[0], n + 1);
  EXPECT_EQ(r[1], 0);
  EXPECT_EQ(r[2], nok ? 2 : 1);
  EXPECT_EQ(r[3] & 3, nok ? 2 : 1);  // the OK / NOK bits
  EXPECT_EQ(r[4], nok ? 750 : 250);
  EXPECT_EQ(r[5], nok ? 1250 : 425);
  EXPECT_EQ(r[6], 1000);
}

TEST(ModbusSinkTest, WithoutHandshakeThePlcReadsEachResultAsItIsRecorded) {
  TempDir dir;
  station::Journal journal(dir.path());
  station::LaneSignals signals;
  int port = 0;
  auto sink =
      station::start_modbus_sink({.port = 0}, journal, dir / "modbus.position", &signals, &port);
  Plc plc(port);
  EXPECT_EQ(plc.registers()[2], 0);  // nothing yet
  for (int n = 0; n < 6; ++n) {
    journal.append(result(n));
    sink->notify();
    expect_result(wait_for(plc, static_cast<std::uint64_t>(n) + 1), n);
  }
  signals.busy = true;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((plc.registers()[3] & 8) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_NE(plc.registers()[3] & 8, 0);  // busy
  EXPECT_EQ(plc.coils()[3], 1);
  // The PLC may write the acknowledge register and nothing else.
  EXPECT_EQ(plc.write(2, 1), -1);
  EXPECT_EQ(errno, EMBXILADD);
  EXPECT_EQ(plc.registers()[2], 2);  // unchanged: the last result (n = 5) is NOK
  EXPECT_EQ(plc.write(station::kModbusAcknowledge, 6), 1);
}

TEST(ModbusSinkTest, WithTheHandshakeEachResultWaitsForItsAcknowledge) {
  TempDir dir;
  station::Journal journal(dir.path());
  constexpr int kResults = 8;
  for (int n = 0; n < kResults; ++n) journal.append(result(n));  // all recorded at once
  int port = 0;
  {
    auto sink = station::start_modbus_sink({.port = 0, .handshake = true}, journal,
                                           dir / "modbus.position", nullptr, &port);
    Plc plc(port);
    for (int n = 0; n < 5; ++n) {
      auto r = wait_for(plc, static_cast<std::uint64_t>(n) + 1);
      expect_result(r, n);
      EXPECT_NE(r[3] & 32, 0);  // waiting for the acknowledge
      EXPECT_EQ(r[7], kResults - n - 1);
      // A wrong acknowledge moves nothing.
      EXPECT_EQ(plc.write(station::kModbusAcknowledge, 999), 1);
      EXPECT_EQ(plc.registers()[0], n + 1);
      EXPECT_EQ(plc.write(station::kModbusAcknowledge, static_cast<std::uint16_t>(n + 1)), 1);
    }
  }
  // Restarted: the next result not acknowledged is shown again.
  auto sink = station::start_modbus_sink({.port = 0, .handshake = true}, journal,
                                         dir / "modbus.position", nullptr, &port);
  Plc plc(port);
  for (int n = 5; n < kResults; ++n) {
    expect_result(wait_for(plc, static_cast<std::uint64_t>(n) + 1), n);
    EXPECT_EQ(plc.write(station::kModbusAcknowledge, static_cast<std::uint16_t>(n + 1)), 1);
  }
  const auto last = wait_for(plc, kResults);
  EXPECT_EQ(last[3] & 32, 0);  // all acknowledged
  EXPECT_EQ(sink->status().pending, 0u);
}

}  // namespace
}  // namespace pv::testing
