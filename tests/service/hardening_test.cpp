// The service under hostile and careless clients: exact statuses, uploads as clients send them,
// names that carry markup, images that would blow up memory, slow clients, tokens.
#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <sys/socket.h>
#include <sys/stat.h>

#include <patchvec/error.h>
#include <patchvec/service.h>

#include "service/auth.h"
#include "service/origins.h"
#include "service/service_testing.h"

namespace pv {
namespace {

using namespace std::chrono_literals;
using testing::exchange;
using testing::json_of;
using testing::status_of;

std::string png_of(int width, int height) {
  std::vector<unsigned char> bytes;
  cv::imencode(".png", cv::Mat(height, width, CV_8UC3, cv::Scalar(90, 120, 150)), bytes);
  return {bytes.begin(), bytes.end()};
}

std::string good_png() {
  return testing::read_text(testing::patchcore_test_image("good/000.png"));
}

class Hardening : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::TempDir>();
    testing::prepare_models(*dir_ / "models",
                            "--store " + (*dir_ / "models" / "store.pvs").string());
    running_ = std::make_unique<testing::RunningService>(
        ServiceOptions{.models_dir = *dir_ / "models",
                       .port = 0,
                       .image_limits = {.max_pixels = 4'000'000},
                       .max_concurrent_inspections = 1});
  }
  static void TearDownTestSuite() {
    running_.reset();
    dir_.reset();
  }
  static int port() { return running_->port(); }
  static std::unique_ptr<testing::TempDir> dir_;
  static std::unique_ptr<testing::RunningService> running_;
};
std::unique_ptr<testing::TempDir> Hardening::dir_;
std::unique_ptr<testing::RunningService> Hardening::running_;

TEST_F(Hardening, UnknownMethodOnARouteIs405WithAllow) {
  const std::string response =
      exchange(port(), "DELETE /v1/inspect HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(status_of(response), 405) << response;
  EXPECT_NE(response.find("Allow: POST"), std::string::npos) << response;
  EXPECT_EQ(status_of(exchange(port(), "PUT /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n")), 405);
  EXPECT_EQ(status_of(exchange(port(), "GET /v2/nothing HTTP/1.1\r\n\r\n")), 404);
}

TEST_F(Hardening, APostWithoutLengthIsAnsweredAtOnce) {
  const auto start = std::chrono::steady_clock::now();
  const std::string response = exchange(
      port(), "POST /v1/inspect?category=synthetic HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 5s);
  EXPECT_EQ(status_of(response), 411) << response;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  const std::string empty = exchange(
      port(), "POST /v1/inspect?category=synthetic HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 5s);
  EXPECT_EQ(status_of(empty), 400) << empty;
  EXPECT_NE(empty.find("empty body"), std::string::npos);
  const std::string big = exchange(
      port(),
      "POST /v1/inspect?category=synthetic HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n", 5s);
  EXPECT_EQ(status_of(big), 413) << big;
}

TEST_F(Hardening, NumbersAreReadStrictly) {
  auto client = running_->client();
  for (const char* id : {"1abc", "+1", "%201", "-1", "1.0", "0x1"}) {
    const auto r = client.Get((std::string("/v1/images/") + id).c_str());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << id << ": " << r->body;
  }
  EXPECT_EQ(client.Get("/v1/images/12345678901234567890")->status, 404);  // no image has it
  EXPECT_EQ(client.Get("/v1/images/1")->status, 200);
  for (const char* limit : {"-1", "0", "1001", "+5", " 5", "5x", "99999999999999999999"}) {
    const auto r = client.Get((std::string("/v1/reports?limit=") + limit).c_str());
    EXPECT_EQ(r->status, 400) << limit << ": " << r->body;
  }
  EXPECT_EQ(client.Get("/v1/reports?limit=1000")->status, 200);
}

TEST_F(Hardening, UploadsAsCurlSendsThem) {
  auto client = running_->client();
  // curl --data-binary @part.png: application/x-www-form-urlencoded
  const auto form_typed = client.Post("/v1/inspect?category=synthetic", good_png(),
                                      "application/x-www-form-urlencoded");
  ASSERT_EQ(form_typed->status, 200) << form_typed->body;
  const auto untyped =
      client.Post("/v1/inspect?category=synthetic", good_png(), "application/octet-stream");
  EXPECT_EQ(untyped->status, 200) << untyped->body;
  // curl -F image=@part.png: one file in a multipart form; its file name names the report.
  const auto form = client.Post(
      "/v1/inspect?category=synthetic",
      httplib::MultipartFormDataItems{{"image", good_png(), "part-17.png", "image/png"}});
  ASSERT_EQ(form->status, 200) << form->body;
  EXPECT_EQ(json_of(form)["path"], "part-17.png");
  const auto two =
      client.Post("/v1/inspect?category=synthetic",
                  httplib::MultipartFormDataItems{{"a", good_png(), "a.png", "image/png"},
                                                  {"b", good_png(), "b.png", "image/png"}});
  EXPECT_EQ(two->status, 400) << two->body;
  const auto none = client.Post("/v1/inspect?category=synthetic",
                                httplib::MultipartFormDataItems{{"note", "hello", "", ""}});
  EXPECT_EQ(none->status, 400) << none->body;
  EXPECT_NE(json_of(none)["error"].get<std::string>().find("no file"), std::string::npos);
}

TEST_F(Hardening, NamesAreTextAndChecked) {
  auto client = running_->client();
  const std::string payload = "<img src=x onerror=\"document.title='pwned'\">";
  const auto marked =
      client.Post(("/v1/inspect?category=synthetic&name=" + testing::url_encode(payload)).c_str(),
                  testing::read_text(testing::patchcore_test_image("blob/000.png")), "image/png");
  ASSERT_EQ(marked->status, 200) << marked->body;
  EXPECT_EQ(json_of(marked)["path"], payload);  // kept as it was: escaping is the page's job
  for (const std::string& bad :
       {std::string("a%0Ab"), std::string(300, 'x'), std::string("%FF%FE"), std::string("a%00b")}) {
    const auto r = client.Post(("/v1/inspect?category=synthetic&name=" + bad).c_str(), good_png(),
                               "image/png");
    EXPECT_EQ(r->status, 400) << bad << ": " << r->body;
  }
}

TEST_F(Hardening, ExtremeAspectGivesABoundedMap) {
  auto client = running_->client();
  const auto r = client.Post("/v1/inspect?category=synthetic", png_of(10000, 2), "image/png");
  ASSERT_EQ(r->status, 200) << r->body;
  const auto body = json_of(r);
  EXPECT_EQ(body["image"]["width"], 10000);
  std::string png;
  const std::string map = body["map_png"];
  // The map is a PNG: read its size from the IHDR after base64 decoding the first bytes.
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i + 4 <= 32; i += 4) {
    unsigned value = 0;
    for (int k = 0; k < 4; ++k)
      value = value << 6 | static_cast<unsigned>(kAlphabet.find(map[i + k]));
    png += static_cast<char>(value >> 16), png += static_cast<char>(value >> 8 & 255),
        png += static_cast<char>(value & 255);
  }
  const auto be32 = [&](std::size_t at) {
    return static_cast<unsigned>(static_cast<unsigned char>(png[at])) << 24 |
           static_cast<unsigned>(static_cast<unsigned char>(png[at + 1])) << 16 |
           static_cast<unsigned>(static_cast<unsigned char>(png[at + 2])) << 8 |
           static_cast<unsigned>(static_cast<unsigned char>(png[at + 3]));
  };
  EXPECT_LE(be32(16), 4u * 384);  // width
  EXPECT_LE(be32(20), 384u);      // height
  // 1 x 1,000,000 pixels in 4 KB of PNG: once 3 GB for the resize (1 x 40,000,000: a 500 with a
  // libtorch backtrace); now an answer, within the documented ~24 bytes a pixel.
  const auto thin =
      client.Post("/v1/inspect?category=synthetic", png_of(1, 1'000'000), "image/png");
  ASSERT_EQ(thin->status, 200) << thin->body.substr(0, 300);
  EXPECT_EQ(json_of(thin)["image"]["height"], 1'000'000);
  // Over the pixel limit (4 MP here): refused from the header.
  const auto big = client.Post("/v1/inspect?category=synthetic", png_of(2500, 2000), "image/png");
  EXPECT_EQ(big->status, 413) << big->body;
  EXPECT_NE(json_of(big)["error"].get<std::string>().find("2500x2000"), std::string::npos);
}

// A report of a defective image, open.
std::int64_t open_report(int port) {
  const std::string png = testing::read_text(testing::patchcore_test_image("blob/000.png"));
  const std::string response =
      testing::exchange(port,
                        "POST /v1/inspect?category=synthetic HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Type: image/png\r\nContent-Length: " +
                            std::to_string(png.size()) + "\r\nConnection: close\r\n\r\n" + png);
  const auto body = nlohmann::json::parse(testing::body_of(response));
  EXPECT_TRUE(body["report_id"].is_number()) << response;
  return body["report_id"].is_number() ? body["report_id"].get<std::int64_t>() : 0;
}

std::string resolve_request(std::int64_t id, const std::string& headers,
                            const std::string& body = R"({"resolution":"false_alarm"})") {
  return "POST /v1/reports/" + std::to_string(id) + "/resolve HTTP/1.1\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// A page of another origin in the operator's browser, and a name rebound to 127.0.0.1, must not
// decide a report (which `update --from-reports` would then learn from).
TEST_F(Hardening, PagesOfOtherSitesChangeNothing) {
  const std::int64_t id = open_report(port());
  const std::string local = "Host: 127.0.0.1:" + std::to_string(port()) + "\r\n";
  const struct {
    std::string headers;
    int status;
  } refused[] = {
      // The reproducer: JSON sent as text/plain (a "simple" request, no preflight).
      {local + "Origin: http://evil.example\r\nContent-Type: text/plain\r\n", 403},
      {local + "Origin: http://evil.example\r\nContent-Type: application/json\r\n", 403},
      {local + "Origin: null\r\nContent-Type: application/json\r\n", 403},
      // Another port of this machine is another origin, and the same site.
      {local + "Origin: http://127.0.0.1:1\r\nContent-Type: application/json\r\n", 403},
      {local + "Sec-Fetch-Site: cross-site\r\nContent-Type: application/json\r\n", 403},
      {local + "Sec-Fetch-Site: same-site\r\nContent-Type: application/json\r\n", 403},
      // DNS rebinding: evil.example now resolves to 127.0.0.1, so the page is "same origin".
      {"Host: evil.example:" + std::to_string(port()) + "\r\nOrigin: http://evil.example:" +
           std::to_string(port()) + "\r\nContent-Type: application/json\r\n",
       421},
      {"Host: evil.example\r\nContent-Type: application/json\r\n", 421},
      // Not JSON's type: what a form or a no-cors fetch can send.
      {local + "Content-Type: text/plain\r\n", 415},
      {local + "Content-Type: application/x-www-form-urlencoded\r\n", 415},
  };
  for (const auto& attempt : refused) {
    const std::string response = testing::exchange(port(), resolve_request(id, attempt.headers));
    EXPECT_EQ(status_of(response), attempt.status) << attempt.headers << response;
  }
  auto client = running_->client();
  const auto rebound = testing::exchange(port(),
                                         "GET /v1/reports HTTP/1.1\r\nHost: evil.example\r\n"
                                         "Connection: close\r\n\r\n");
  EXPECT_EQ(status_of(rebound), 421) << rebound;  // reading reports is refused too
  const auto report = json_of(client.Get("/v1/reports?limit=1000"));
  bool still_open = false;
  for (const auto& r : report) still_open |= r["id"] == id && r["status"] == "open";
  EXPECT_TRUE(still_open) << report.dump();
  // The page itself (same origin) and programs (no Origin) may decide.
  const std::string same_origin = testing::exchange(
      port(), resolve_request(id, local + "Origin: http://127.0.0.1:" + std::to_string(port()) +
                                      "\r\nSec-Fetch-Site: same-origin\r\n"
                                      "Content-Type: application/json\r\n"));
  EXPECT_EQ(status_of(same_origin), 200) << same_origin;
  const std::int64_t second = open_report(port());
  const std::string program = testing::exchange(
      port(), resolve_request(second, "Host: localhost:" + std::to_string(port()) +
                                          "\r\nContent-Type: application/json; charset=utf-8\r\n"));
  EXPECT_EQ(status_of(program), 200) << program;
  // Uploads keep taking raw bytes whatever their type, from programs.
  EXPECT_EQ(client.Post("/v1/inspect?category=synthetic", good_png(), "text/plain")->status, 200);
}

TEST(HostPolicy, NamesAndOrigins) {
  const service::HostPolicy loopback({}, "127.0.0.1");
  httplib::Request request;
  EXPECT_FALSE(loopback.refuse_host(request));  // HTTP/1.0 without Host
  for (const char* host : {"127.0.0.1", "127.0.0.1:8080", "localhost:1", "LOCALHOST", "[::1]:80"}) {
    request.headers = {{"Host", host}};
    EXPECT_FALSE(loopback.refuse_host(request)) << host;
  }
  for (const char* host : {"evil.example", "127.0.0.2", "127.0.0.1.evil.example", "", "a b", "[::1",
                           "127.0.0.1:80x", "localhost:123456"}) {
    request.headers = {{"Host", host}};
    EXPECT_TRUE(loopback.refuse_host(request)) << host;
  }
  request.headers = {{"Host", "127.0.0.1"}, {"Host", "127.0.0.1"}};
  EXPECT_TRUE(loopback.refuse_host(request));  // several
  const service::HostPolicy named({"inspect.example.com", "10.0.0.5"}, "0.0.0.0");
  request.headers = {{"Host", "inspect.example.com:8443"}};
  EXPECT_FALSE(named.refuse_host(request));
  request.headers = {{"Host", "localhost"}};
  EXPECT_TRUE(named.refuse_host(request));  // only the names given
  const service::HostPolicy wildcard({}, "0.0.0.0");
  request.headers = {{"Host", "anything.example"}};
  EXPECT_FALSE(wildcard.refuse_host(request));
  EXPECT_THROW(service::HostPolicy({"host:80"}, "127.0.0.1"), Error);
  EXPECT_THROW(service::HostPolicy({"a/b"}, "127.0.0.1"), Error);
  // Origins: the request's own (default ports spelled or not), else refused.
  request.headers = {{"Host", "inspect.example.com"}, {"Origin", "https://inspect.example.com"}};
  EXPECT_FALSE(named.refuse_cross_site(request));  // behind a TLS proxy: Host without a port
  request.headers = {{"Host", "inspect.example.com:8443"},
                     {"Origin", "https://inspect.example.com"}};
  EXPECT_TRUE(named.refuse_cross_site(request));  // another port
  request.headers = {{"Host", "inspect.example.com:443"},
                     {"Origin", "https://inspect.example.com"}};
  EXPECT_FALSE(named.refuse_cross_site(request));
  request.headers = {{"Host", "127.0.0.1:80"}, {"Origin", "http://127.0.0.1"}};
  EXPECT_FALSE(loopback.refuse_cross_site(request));
  request.headers = {{"Origin", "http://localhost:9"}};  // no Host: an allowed name
  EXPECT_FALSE(loopback.refuse_cross_site(request));
  request.headers = {{"Origin", "http://evil.example"}};
  EXPECT_TRUE(loopback.refuse_cross_site(request));
  request.headers = {{"Host", "127.0.0.1"}, {"Sec-Fetch-Site", "none"}};  // typed by the user
  EXPECT_FALSE(loopback.refuse_cross_site(request));
}

// Bytes are bytes: paths and parameters that are not clean text are a 400, never a 500, and what
// a client sent is never repeated whole.
TEST_F(Hardening, BytesThatAreNotTextAre400) {
  for (const char* target :
       {"/x%0Apatchvec:%20warning:%20FORGED%20admin%20login%20ok%FF", "/%FF", "/x%0Ay",
        "/v1/reports?category=%FF", "/v1/reports?status=%1B%5B31m", "/v1/categories?%FF=1"}) {
    const std::string response = testing::exchange(
        port(), std::string("GET ") + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    EXPECT_EQ(status_of(response), 400) << target << ": " << response;
    EXPECT_EQ(response.find("FORGED"), std::string::npos) << response;
  }
  const std::int64_t id = open_report(port());
  const std::string huge(1 << 20, 'x');
  const std::string echoed = testing::exchange(
      port(), resolve_request(id, "Host: 127.0.0.1\r\nContent-Type: application/json\r\n",
                              R"({"resolution":")" + huge + R"("})"));
  EXPECT_EQ(status_of(echoed), 400) << echoed.substr(0, 300);
  EXPECT_LT(testing::body_of(echoed).size(), 500u);
  const std::string empty = testing::exchange(
      port(), resolve_request(id, "Host: 127.0.0.1\r\nContent-Type: application/json\r\n", ""));
  EXPECT_EQ(status_of(empty), 400) << empty;
  EXPECT_NE(empty.find("send a JSON object"), std::string::npos) << empty;
  const std::string bad_id =
      testing::exchange(port(),
                        "POST /v1/reports/abc/resolve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                        "application/json\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_NE(bad_id.find("a report id is a whole number"), std::string::npos) << bad_id;
  // JSON escapes of an escape sequence, a NUL and a line break, as a client would send them.
  for (const std::string text : {R"(crack\u001b[2J)", R"(a\u0000b)", R"(line\r\nInjected: 1)"}) {
    const std::string control = testing::exchange(
        port(),
        resolve_request(id, "Host: 127.0.0.1\r\nContent-Type: application/json\r\n",
                        R"({"resolution":"defect","defect":")" + text + R"(","note":"n"})"));
    EXPECT_EQ(status_of(control), 400) << control;
    EXPECT_NE(control.find("control characters"), std::string::npos) << control;
  }
}

// Bodies come with one Content-Length: no chunks, no two lengths that disagree.
TEST_F(Hardening, BodiesAreFramedOneWay) {
  const std::string chunked =
      testing::exchange(port(),
                        "POST /v1/inspect?category=synthetic HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n");
  EXPECT_EQ(status_of(chunked), 411) << chunked;
  const std::string both =
      testing::exchange(port(),
                        "POST /v1/inspect?category=synthetic HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nabcd");
  EXPECT_EQ(status_of(both), 411) << both;
  const std::string two =
      testing::exchange(port(),
                        "POST /v1/inspect?category=synthetic HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd");
  EXPECT_EQ(status_of(two), 400) << two;
}

TEST_F(Hardening, ServesARawConnection) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  testing::send_all(fds[0], "GET /livez HTTP/1.1\r\nConnection: close\r\n\r\n");
  ::shutdown(fds[0], SHUT_WR);
  // The same service object as the one on the port; served on this thread.
  InspectionService service({.models_dir = *dir_ / "models", .port = 0});
  service.serve_connection(fds[1]);
  const std::string response = testing::read_response(fds[0], 2s);
  ::close(fds[0]);
  EXPECT_EQ(status_of(response), 200) << response;
}

// --- slow clients ------------------------------------------------------------------------------

class SlowClients : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::TempDir>();
    testing::prepare_models(*dir_ / "models",
                            "--store " + (*dir_ / "models" / "store.pvs").string());
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static std::unique_ptr<testing::TempDir> dir_;
};
std::unique_ptr<testing::TempDir> SlowClients::dir_;

// Sends `request` a byte every `gap`, at most `limit` bytes; returns when the server closes the
// connection or everything was sent. Bounded: it always stops by itself.
std::string trickle(int port, const std::string& request, std::chrono::milliseconds gap,
                    std::size_t limit, std::chrono::steady_clock::duration* lasted = nullptr) {
  const auto start = std::chrono::steady_clock::now();
  const int fd = testing::connect_to(port);
  if (fd < 0) return "";
  std::string response;
  for (std::size_t i = 0; i < std::min(limit, request.size()); ++i) {
    if (::send(fd, &request[i], 1, MSG_NOSIGNAL) != 1) break;
    response = testing::read_response(fd, gap);
    if (!response.empty()) break;  // the server answered (and closes)
  }
  if (response.empty()) response = testing::read_response(fd, 200ms);
  ::close(fd);
  if (lasted != nullptr) *lasted = std::chrono::steady_clock::now() - start;
  return response;
}

TEST_F(SlowClients, AWholeRequestHasADeadline) {
  testing::RunningService running(
      {.models_dir = *dir_ / "models", .port = 0, .request_timeout_seconds = 2});
  // A byte every 300 ms: every single read is quick, the request never ends. Cut at 2 s.
  std::chrono::steady_clock::duration lasted{};
  const std::string request =
      "GET /v1/categories HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + std::string(200, 'a') +
      "\r\n\r\n";
  const std::string response = trickle(running.port(), request, 300ms, request.size(), &lasted);
  EXPECT_LT(lasted, 4s) << "the slow client was not cut off";
  EXPECT_EQ(status_of(response), 408) << response;
  // Slow headers before the request line ends, and a slow body: 408 too.
  const std::string line = "GET /v1/categories?padding=" + std::string(100, 'a') + " HTTP/1.1\r\n";
  EXPECT_EQ(status_of(trickle(running.port(), line, 300ms, line.size())), 408);
  const std::string body =
      "POST /v1/inspect?category=synthetic HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Length: 100\r\n\r\n" +
      std::string(100, 'b');
  const std::string slow_body = testing::exchange(running.port(), body.substr(0, body.size() - 90));
  EXPECT_EQ(status_of(slow_body), 408) << slow_body;
}

TEST_F(SlowClients, HealthAnswersWhileSlowClientsHoldTheConnections) {
  testing::RunningService running({.models_dir = *dir_ / "models",
                                   .port = 0,
                                   .request_timeout_seconds = 20,
                                   .max_connections = 16,
                                   .max_connections_per_client = 8});
  const int port = running.port();
  // 12 clients sending a byte every 500 ms (for at most 6 s): more than one address may hold.
  std::vector<std::thread> slow;
  for (int i = 0; i < 12; ++i) {
    slow.emplace_back([port] {
      trickle(port, "GET /v1/categories HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 500ms, 12);
    });
  }
  // All of them connected (12 at once: more than httplib's own listen backlog of 5 would take).
  std::this_thread::sleep_for(300ms);
  // A burst of new connections from the address (every check behind a balancer comes from one),
  // while every connection and reserve connection is taken: health checks among them are still
  // answered, the oldest idle reserve connection giving way.
  std::vector<int> burst;
  for (int i = 0; i < 8; ++i) burst.push_back(testing::connect_to(port));
  const std::string checked = testing::exchange(
      port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 3s);
  EXPECT_EQ(status_of(checked), 200) << checked;
  for (const int fd : burst) ::close(fd);
  // Health checks from the same address, one at a time: each is answered at once (a reserve
  // connection still waiting for its request gives way to a newcomer).
  int answered = 0;
  std::chrono::steady_clock::duration worst{};
  for (int i = 0; i < 6; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const std::string response =
        exchange(port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 3s);
    worst = std::max(worst, std::chrono::steady_clock::now() - start);
    answered += status_of(response) == 200;
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(answered, 6) << "health checks starved by slow clients";
  EXPECT_LT(worst, 1s);
  // Other routes from that address are refused while it holds its share (429).
  const std::string busy =
      exchange(port, "GET /v1/categories HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 3s);
  EXPECT_EQ(status_of(busy), 429) << busy;
  for (auto& t : slow) t.join();
}

// --- authentication ----------------------------------------------------------------------------

TEST(Tokens, OnlyRegularFilesOfBoundedSize) {
  testing::TempDir dir;
  const auto fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(service::TokenFile::load(fifo), Error);         // would block forever when read
  EXPECT_THROW(service::TokenFile::load("/dev/zero"), Error);  // would never end
  testing::write_text(dir / "big", std::string(2 << 20, '#'));
  EXPECT_THROW(service::TokenFile::load(dir / "big"), Error);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(Tokens, FileFormatAndRoles) {
  testing::TempDir dir;
  const std::string inspector(24, 'i'), admin(32, 'a');
  testing::write_text(dir / "tokens", "# who may call\n" + inspector + " inspect\n\n" + admin +
                                          " admin line-lead-ana\n");
  const auto tokens = service::TokenFile::load(dir / "tokens");
  EXPECT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens.caller_of("Bearer " + inspector)->role, service::Role::kInspect);
  EXPECT_EQ(tokens.caller_of("Bearer " + inspector)->name, "inspect");  // no name: the role's
  EXPECT_EQ(tokens.caller_of("Bearer " + admin)->role, service::Role::kAdmin);
  EXPECT_EQ(tokens.caller_of("Bearer " + admin)->name, "line-lead-ana");
  EXPECT_FALSE(tokens.caller_of("Bearer " + std::string(24, 'x')));
  EXPECT_FALSE(tokens.caller_of(inspector));  // no scheme
  EXPECT_FALSE(tokens.caller_of(""));
  const auto error_of = [&](const std::string& text) {
    testing::write_text(dir / "bad", text);
    try {
      service::TokenFile::load(dir / "bad");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of("short inspect\n").find("line 1: the token is shorter"), std::string::npos);
  EXPECT_NE(error_of(inspector + " root\n").find("unknown role 'root'"), std::string::npos);
  EXPECT_NE(error_of(inspector + "\n").find("expected 'TOKEN ROLE [NAME]'"), std::string::npos);
  EXPECT_NE(error_of(inspector + " inspect two words\n").find("NAME without spaces"),
            std::string::npos);
  EXPECT_NE(error_of(inspector + " inspect\n" + inspector + " admin\n").find("twice"),
            std::string::npos);
  EXPECT_NE(error_of("# nothing\n").find("holds no token"), std::string::npos);
  // A message never shows a token.
  EXPECT_EQ(error_of(inspector + " root\n").find(inspector), std::string::npos);
}

class Authentication : public SlowClients {};

TEST_F(Authentication, RoutesNeedATokenOfTheirRole) {
  const std::string inspector = "inspector-token-0123456789", admin = "admin-token-0123456789abc";
  testing::write_text(*dir_ / "tokens", inspector + " inspect\n" + admin + " admin\n");
  testing::RunningService running(
      {.models_dir = *dir_ / "models", .port = 0, .auth_tokens = *dir_ / "tokens"});
  auto client = running.client();
  const auto anonymous = client.Get("/v1/categories");
  EXPECT_EQ(anonymous->status, 401) << anonymous->body;
  EXPECT_NE(anonymous->get_header_value("WWW-Authenticate").find("Bearer"), std::string::npos);
  EXPECT_EQ(client.Get("/metrics")->status, 401);
  EXPECT_EQ(client.Post("/v1/inspect?category=synthetic", good_png(), "image/png")->status, 401);
  client.set_bearer_token_auth("wrong-token-0123456789");
  EXPECT_EQ(client.Get("/v1/categories")->status, 401);
  client.set_bearer_token_auth(inspector);
  EXPECT_EQ(client.Get("/v1/categories")->status, 200);
  EXPECT_EQ(client.Post("/v1/inspect?category=synthetic", good_png(), "image/png")->status, 200);
  client.set_bearer_token_auth(admin);  // admin may do what inspect may
  EXPECT_EQ(client.Get("/metrics")->status, 200);
  // Health, liveness and the page itself need no token.
  httplib::Client open("127.0.0.1", running.port());
  EXPECT_EQ(open.Get("/healthz")->status, 200);
  EXPECT_EQ(open.Get("/livez")->status, 200);
  EXPECT_EQ(open.Get("/")->status, 200);
  EXPECT_EQ(open.Get("/app.js")->status, 200);
}

TEST_F(Authentication, NoTokensMeansThisMachineOnly) {
  try {
    InspectionService({.models_dir = *dir_ / "models", .host = "0.0.0.0", .port = 0});
    FAIL() << "served 0.0.0.0 without tokens";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--auth-tokens"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--insecure"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(InspectionService(
      {.models_dir = *dir_ / "models", .host = "0.0.0.0", .port = 0, .insecure = true}));
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("127.8.9.10"));
  EXPECT_TRUE(is_loopback_host("::1"));
  EXPECT_TRUE(is_loopback_host("localhost"));
  EXPECT_FALSE(is_loopback_host("0.0.0.0"));
  EXPECT_FALSE(is_loopback_host("10.0.0.1"));
  EXPECT_FALSE(is_loopback_host("128.0.0.1"));
}

TEST_F(Authentication, TokensNeverReachTheLog) {
  const std::string secret = "do-not-log-this-token-42";
  testing::write_text(*dir_ / "log_tokens", secret + " inspect\n");
  const auto log = *dir_ / "serve.log";
  const auto pid_file = *dir_ / "serve.pid";
  const std::string command = std::string(PATCHVEC_BINARY) + " serve --port 0 --models " +
                              (*dir_ / "models").string() + " --auth-tokens " +
                              (*dir_ / "log_tokens").string() + " > " + log.string() +
                              " 2>&1 & echo $! > " + pid_file.string();
  ASSERT_EQ(std::system(command.c_str()), 0);
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    std::this_thread::sleep_for(100ms);
    const std::string text = testing::read_text(log);
    const auto at = text.find("http://127.0.0.1:");
    if (at != std::string::npos) port = std::stoi(text.substr(at + 17));
  }
  ASSERT_NE(port, 0) << testing::read_text(log);
  httplib::Client client("127.0.0.1", port);
  client.set_bearer_token_auth(secret);
  EXPECT_EQ(client.Get("/v1/categories")->status, 200);
  client.set_bearer_token_auth(secret + "-wrong");
  EXPECT_EQ(client.Get("/v1/categories")->status, 401);
  ::kill(std::stoi(testing::read_text(pid_file)), SIGTERM);
  for (int i = 0; i < 100 && ::kill(std::stoi(testing::read_text(pid_file)), 0) == 0; ++i)
    std::this_thread::sleep_for(100ms);
  EXPECT_EQ(testing::read_text(log).find(secret), std::string::npos) << testing::read_text(log);
}

}  // namespace
}  // namespace pv
