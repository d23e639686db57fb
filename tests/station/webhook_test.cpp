// The webhook sink against an HTTP server on 127.0.0.1 that fails twice before it answers.
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "station/journal.h"
#include "station/webhook_sink.h"
#include "testing.h"
#include "util/sha256.h"

namespace pv::testing {
namespace {

using namespace std::chrono_literals;

struct Received {
  std::string key;
  std::string body;
  std::string signature;
  int status = 0;
};

class Endpoint {
 public:
  explicit Endpoint(int failures) : failures_(failures) {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      const std::lock_guard lock(mutex_);
      const int status = failures_-- > 0 ? 500 : 200;
      received_.push_back({req.get_header_value("Idempotency-Key"), req.body,
                           req.get_header_value("X-PatchVec-Signature"), status});
      res.status = status;
      res.set_content(status == 200 ? "{}" : "{\"error\":\"down\"}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Endpoint() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<Received> received() const {
    const std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  int failures_;
  std::vector<Received> received_;
};

std::string key(int n) {
  char text[33];
  std::snprintf(text, sizeof text, "%032x", n + 100);
  return text;
}

TEST(WebhookSinkTest, AnEndpointFailingTwiceGetsEachResultOnceSignedAndInOrder) {
  TempDir dir;
  Endpoint endpoint(2);
  station::Journal journal(dir.path());
  for (int n = 0; n < 5; ++n) journal.append({{"key", key(n)}, {"verdict", "normal"}});
  auto sink = station::start_webhook_sink({.url = endpoint.url(), .secret = "s3cret"}, journal,
                                          dir / "webhook-0.position");
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (sink->status().pending > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(sink->status().pending, 0u);
  journal.append({{"key", key(5)}, {"verdict", "anomalous"}});  // a new one, delivered at once
  sink->notify();
  while (sink->status().pending > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  sink->drain_and_stop(std::chrono::steady_clock::now() + 5s);

  const auto received = endpoint.received();
  ASSERT_EQ(received.size(), 8u);  // two refusals of the first, then six
  EXPECT_EQ(received[0].status, 500);
  EXPECT_EQ(received[1].status, 500);
  std::vector<std::string> acknowledged;
  for (const auto& r : received) {
    EXPECT_EQ(r.signature, "sha256=" + hmac_sha256_hex("s3cret", r.body));
    EXPECT_EQ(nlohmann::json::parse(r.body)["key"], r.key);
    if (r.status == 200) acknowledged.push_back(r.key);
  }
  ASSERT_EQ(acknowledged.size(), 6u);
  for (int n = 0; n < 6; ++n) EXPECT_EQ(acknowledged[static_cast<std::size_t>(n)], key(n));
  EXPECT_EQ(read_text(dir / "webhook-0.position"), "6\n");
  // A signature is the HMAC of the exact body (RFC 4231's second test case).
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(WebhookSinkTest, AStopWhileTheEndpointIsDownKeepsTheResultsForTheNextStart) {
  TempDir dir;
  station::Journal journal(dir.path());
  journal.append({{"key", key(0)}});
  const std::string url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/hook";
  {
    auto sink = station::start_webhook_sink({.url = url}, journal, dir / "webhook-0.position");
    std::this_thread::sleep_for(200ms);
    EXPECT_FALSE(sink->status().connected);
    EXPECT_EQ(sink->status().pending, 1u);
    const auto before = std::chrono::steady_clock::now();
    sink->drain_and_stop(before + 30s);
    EXPECT_LT(std::chrono::steady_clock::now() - before, 5s);  // no waiting on a dead endpoint
  }
  Endpoint endpoint(0);
  auto sink =
      station::start_webhook_sink({.url = endpoint.url()}, journal, dir / "webhook-0.position");
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (endpoint.received().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  sink->drain_and_stop(std::chrono::steady_clock::now() + 5s);
  ASSERT_EQ(endpoint.received().size(), 1u);
  EXPECT_EQ(endpoint.received()[0].key, key(0));
}

}  // namespace
}  // namespace pv::testing
