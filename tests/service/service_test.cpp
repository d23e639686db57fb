// The inspection service over real HTTP (cpp-httplib's client): every endpoint and every class of
// bad request, with the embedded store and with PostgreSQL (including a database that goes away).
#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <patchvec/error.h>
#include <patchvec/model.h>
#include <patchvec/service.h>
#include <patchvec/store.h>

#include "service/service_testing.h"
#include "store/pg_testing.h"
#include "store/postgres.h"
#include "store/store_testing.h"

namespace pv {
namespace {

using testing::patchcore_test_image;
std::string test_image(const std::string& name) {
  return patchcore_test_image(name);
}

using testing::json_of;
using Running = testing::RunningService;

void prepare(const std::filesystem::path& models, const std::string& store_args) {
  testing::prepare_models(models, store_args);
}

std::string file_bytes(const std::string& path) {
  return testing::read_text(path);
}

class ServiceApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::TempDir>();
    prepare(*dir_ / "models", "--store " + (*dir_ / "models" / "store.pvs").string());
    // ConcurrentRequestsAreAnsweredAsOneByOne opens 8 connections at once from 127.0.0.1 while
    // the server may still be closing the test's previous one: room for both (the per-client
    // limit has its own tests in hardening_test.cpp).
    ServiceOptions options{.models_dir = *dir_ / "models",
                           .port = 0,
                           .image_limits = {.max_pixels = 4000000},
                           .max_connections_per_client = 16};
    running_ = std::make_unique<Running>(options);
  }
  static void TearDownTestSuite() {
    running_.reset();
    dir_.reset();
  }
  static std::unique_ptr<testing::TempDir> dir_;
  static std::unique_ptr<Running> running_;
};
std::unique_ptr<testing::TempDir> ServiceApi::dir_;
std::unique_ptr<Running> ServiceApi::running_;

TEST_F(ServiceApi, HealthAndCategories) {
  auto client = running_->client();
  const auto health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json_of(health)["status"], "ok");
  const auto categories = json_of(client.Get("/v1/categories"));
  ASSERT_EQ(categories.size(), 1u);
  EXPECT_EQ(categories[0]["category"], "synthetic");
  EXPECT_EQ(categories[0]["backbone"], "resnet18");
  EXPECT_TRUE(categories[0]["thresholds"]["image"].is_number());
  EXPECT_EQ(categories[0]["stored_images"], 12);
}

TEST_F(ServiceApi, InspectsNormalAndDefectiveImages) {
  auto client = running_->client();
  const auto normal = client.Post("/v1/inspect?category=synthetic&name=good.png",
                                  file_bytes(test_image("good/000.png")), "image/png");
  ASSERT_TRUE(normal);
  ASSERT_EQ(normal->status, 200) << normal->body;
  const auto n = json_of(normal);
  EXPECT_EQ(n["verdict"], "normal");
  EXPECT_TRUE(n["report_id"].is_null());
  EXPECT_EQ(n["matches"].size(), 9u);
  EXPECT_FALSE(n["map_png"].get<std::string>().empty());
  EXPECT_LT(n["normalized"].get<double>(), 0.5);

  const auto defect = client.Post("/v1/inspect?category=synthetic&name=blob.png",
                                  file_bytes(test_image("blob/001.png")), "image/png");
  ASSERT_EQ(defect->status, 200) << defect->body;
  const auto d = json_of(defect);
  EXPECT_EQ(d["verdict"], "anomalous");
  ASSERT_TRUE(d["report_id"].is_number());
  ASSERT_FALSE(d["matches"].empty());
  EXPECT_EQ(d["matches"][0]["defect"], "blob");

  // The thumbnail of a match, and the report in the list.
  const auto thumb = client.Get(d["matches"][0]["thumbnail"].get<std::string>().c_str());
  ASSERT_EQ(thumb->status, 200);
  EXPECT_EQ(thumb->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(thumb->body.substr(1, 3), "PNG");
  const auto reports = json_of(client.Get("/v1/reports?category=synthetic&limit=5"));
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports[0]["id"], d["report_id"]);
  EXPECT_EQ(reports[0]["path"], "blob.png");

  const auto metrics = client.Get("/metrics");
  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("patchvec_requests_total{route=\"/v1/inspect\",status=\"200\"}"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("patchvec_inspect_seconds_count"), std::string::npos);
  EXPECT_NE(metrics->body.find("patchvec_anomalies_reported_total"), std::string::npos);
}

// A trained model whose category has no stored images yet (trained, not indexed): verdicts from
// the model alone, no matches, a note saying why; ready, and no incident.
TEST_F(ServiceApi, AModelWithoutStoredImagesStillAnswers) {
  testing::TempDir fresh;
  std::filesystem::create_directories(fresh / "models");
  std::filesystem::copy_file(*dir_ / "models" / "synthetic.pvm",
                             fresh / "models" / "synthetic.pvm");
  const Running running({.models_dir = fresh / "models", .port = 0});
  auto client = running.client();
  const auto health = testing::health_when(client, 200);
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  for (const char* image : {"good/000.png", "blob/001.png"}) {
    const auto answer =
        client.Post("/v1/inspect?category=synthetic", file_bytes(test_image(image)), "image/png");
    ASSERT_TRUE(answer);
    ASSERT_EQ(answer->status, 200) << answer->body;
    const auto r = json_of(answer);
    EXPECT_EQ(r["verdict"], std::string(image).starts_with("good") ? "normal" : "anomalous")
        << answer->body;
    EXPECT_TRUE(r["matches"].empty());
    EXPECT_EQ(r["best_similarity"], 0.0);
    EXPECT_TRUE(r["note"].get<std::string>().starts_with(
        "no stored images of this category: patchvec index"))
        << r["note"];
    EXPECT_FALSE(r["map_png"].get<std::string>().empty());
  }
  const auto categories = json_of(client.Get("/v1/categories"));
  EXPECT_EQ(categories[0]["stored_images"], 0);
}

TEST_F(ServiceApi, BadRequestsGetJsonErrors) {
  auto client = running_->client();
  const auto expect = [](const httplib::Result& r, int status, const std::string& words) {
    ASSERT_TRUE(r) << words;
    EXPECT_EQ(r->status, status) << r->body;
    const auto body = nlohmann::json::parse(r->body);
    EXPECT_NE(body["error"].get<std::string>().find(words), std::string::npos) << r->body;
  };
  const std::string png = file_bytes(test_image("good/000.png"));
  expect(client.Post("/v1/inspect?category=synthetic", "", "image/png"), 400, "empty body");
  expect(client.Post("/v1/inspect?category=synthetic", "hello", "image/png"), 415,
         "not an image (PatchVec reads PNG, JPEG or BMP)");
  expect(
      client.Post("/v1/inspect?category=synthetic", std::string("II*\0 a tiff", 11), "image/tiff"),
      415, "TIFF is not supported");
  expect(client.Post("/v1/inspect?category=wood", png, "image/png"), 404, "unknown category");
  expect(client.Post("/v1/inspect", png, "image/png"), 400, "missing ?category=");
  // A PNG header that claims 50000 x 50000 pixels: refused before anything is decoded.
  std::string huge = png.substr(0, 33);
  huge[16] = 0, huge[17] = 0, huge[18] = '\xc3', huge[19] = '\x50';
  huge[20] = 0, huge[21] = 0, huge[22] = '\xc3', huge[23] = '\x50';
  expect(client.Post("/v1/inspect?category=synthetic", huge, "image/png"), 413, "50000x50000");
  // A header with a zero side is damaged, not too large.
  std::string flat = huge;
  flat[18] = 0, flat[19] = 0;
  expect(client.Post("/v1/inspect?category=synthetic", flat, "image/png"), 422, "corrupt PNG");
  expect(client.Post("/v1/inspect?category=synthetic", png.substr(0, png.size() / 2), "image/png"),
         422, "corrupt or truncated PNG");
  // A JPEG whose data is garbage: damaged (422), not "not an image" (415).
  const std::string jpeg = std::string(
                               "\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03\x01"
                               "\x22\x00\x02\x11\x01\x03\x11\x01",
                               21) +
                           std::string(200, '\x5a');
  expect(client.Post("/v1/inspect?category=synthetic", jpeg, "image/jpeg"), 422, "JPEG");
  expect(client.Get("/v1/images/999999"), 404, "no stored image");
  expect(client.Get("/v1/images/abc"), 400, "whole number");
  expect(client.Get("/v1/reports?limit=many"), 400, "limit must be a whole number from 1 to 1000");
  expect(client.Get("/nothing/here"), 404, "no such endpoint");
  EXPECT_EQ(client.Get("/healthz")->status, 200);  // still alive
}

TEST_F(ServiceApi, ServesThePageWithAPolicyAgainstInlineScript) {
  auto client = running_->client();
  const auto page = client.Get("/");
  ASSERT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<title>PatchVec inspection</title>"), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  const std::string policy = page->get_header_value("Content-Security-Policy");
  EXPECT_NE(policy.find("script-src 'self'"), std::string::npos) << policy;
  EXPECT_EQ(policy.find("unsafe-inline"), std::string::npos) << policy;
  EXPECT_EQ(page->get_header_value("X-Content-Type-Options"), "nosniff");
  // No inline script or handler: everything the page runs comes from /app.js.
  EXPECT_EQ(page->body.find("<script>"), std::string::npos);
  EXPECT_EQ(page->body.find("onclick"), std::string::npos);
  const auto script = client.Get("/app.js");
  ASSERT_EQ(script->status, 200);
  EXPECT_NE(script->get_header_value("Content-Type").find("javascript"), std::string::npos);
  EXPECT_EQ(script->body.find("innerHTML"), std::string::npos) << "data must never become HTML";
  EXPECT_EQ(client.Get("/app.css")->status, 200);
}

// 8 clients at once, their requests batched into shared forward passes: every answer is the one
// the same image gets alone, bit for bit (scores are printed with 9 significant digits).
TEST_F(ServiceApi, ConcurrentRequestsAreAnsweredAsOneByOne) {
  const std::vector<std::string> names = {"good/000.png", "good/001.png", "blob/000.png",
                                          "blob/001.png"};
  std::vector<std::string> pngs;
  std::vector<double> alone;
  auto client = running_->client();
  for (const auto& name : names) {
    pngs.push_back(file_bytes(test_image(name)));
    const auto r = client.Post("/v1/inspect?category=synthetic", pngs.back(), "image/png");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    alone.push_back(json_of(r)["score"].get<double>());
  }
  const auto forward_passes = [&] {
    const std::string text = client.Get("/metrics")->body;
    const std::string name = "\npatchvec_forward_passes_total ";
    const auto at = text.find(name);
    return at == std::string::npos ? -1000L : std::stol(text.substr(at + name.size()));
  };
  const long passes_before = forward_passes();
  std::vector<std::thread> clients;
  std::atomic<int> ok = 0;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      auto mine = running_->client();
      for (int i = 0; i < 3; ++i) {
        const std::size_t k = static_cast<std::size_t>(c + i) % names.size();
        const auto r = mine.Post("/v1/inspect?category=synthetic", pngs[k], "image/png");
        if (!r) {
          ADD_FAILURE() << "no answer: " << httplib::to_string(r.error());
          continue;
        }
        if (r->status != 200) {
          ADD_FAILURE() << r->status << " " << r->body;
          continue;
        }
        EXPECT_EQ(json_of(r)["score"].get<double>(), alone[k]) << names[k];
        ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok, 24);
  EXPECT_LT(forward_passes() - passes_before, 24) << "no two requests shared a forward pass";
}

TEST_F(ServiceApi, TheServeCommandAnswersAndStopsOnSigterm) {
  const auto log = *dir_ / "serve.log";
  const auto pid_file = *dir_ / "serve.pid";
  const std::string command = std::string(PATCHVEC_BINARY) + " serve --port 0 --models " +
                              (*dir_ / "models").string() + " > " + log.string() +
                              " 2>&1 & echo $! > " + pid_file.string();
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::string url;
  for (int i = 0; i < 200 && url.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::string text = testing::read_text(log);
    const auto at = text.find("http://127.0.0.1:");
    if (at != std::string::npos) url = text.substr(at, text.find('/', at + 7) - at);
  }
  ASSERT_FALSE(url.empty()) << testing::read_text(log);
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  httplib::Client client("127.0.0.1", port);
  const auto health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  const int pid = std::stoi(testing::read_text(pid_file));
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    gone = ::kill(pid, 0) != 0;
  }
  EXPECT_TRUE(gone) << "the server did not stop on SIGTERM";
  EXPECT_NE(testing::read_text(log).find("stopping"), std::string::npos);
}

// A database that accepts connections and never answers (a dead link): /healthz still answers at
// once, and says "not ready" within a few seconds; the service stops in bounded time.
TEST(ServiceWithPostgres, HealthAnswersAtOnceWhenTheDatabaseStopsAnswering) {
  ASSERT_FALSE(testing::test_server_url().empty());
  testing::ScratchDatabase database("test_black_hole");
  const std::string& url = database.url();
  testing::TempDir dir;
  prepare(dir / "models", "--db " + url);
  const auto port_at = url.rfind(':') + 1;
  testing::TcpRelay relay(std::stoi(url.substr(port_at)));
  const std::string relayed =
      url.substr(0, port_at) + std::to_string(relay.port()) + url.substr(url.find('/', port_at));
  const auto stop_started = [&] {
    Running running({.models_dir = dir / "models", .store = {.db = relayed}, .port = 0});
    auto client = running.client();
    ASSERT_EQ(testing::health_when(client, 200)->status, 200);
    relay.black_hole();
    const auto start = std::chrono::steady_clock::now();
    std::chrono::steady_clock::duration slowest{};
    int status = 200;
    while (status == 200 && std::chrono::steady_clock::now() - start < std::chrono::seconds(15)) {
      const auto asked = std::chrono::steady_clock::now();
      const auto health = client.Get("/healthz");
      ASSERT_TRUE(health);
      slowest = std::max(slowest, std::chrono::steady_clock::now() - asked);
      status = health->status;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const double turned =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(status, 503);
    EXPECT_LT(turned, 6.0) << "not ready only after " << turned << " s";
    EXPECT_LT(slowest, std::chrono::milliseconds(500)) << "a health check waited for the database";
    std::printf("black-holed database: not ready after %.1f s; slowest /healthz %.0f ms\n", turned,
                std::chrono::duration<double, std::milli>(slowest).count());
    for (int i = 0; i < 5; ++i) {
      const auto asked = std::chrono::steady_clock::now();
      EXPECT_EQ(client.Get("/healthz")->status, 503);
      EXPECT_LT(std::chrono::steady_clock::now() - asked, std::chrono::milliseconds(500));
    }
  };
  const auto start = std::chrono::steady_clock::now();
  stop_started();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

TEST(ServiceSetUp, MissingFolderAndNoModelsAreErrors) {
  testing::TempDir dir;
  EXPECT_THROW(InspectionService({.models_dir = dir / "none"}), Error);
  EXPECT_THROW(InspectionService({.models_dir = dir.path()}), Error);
}

TEST(ServiceWithPostgres, ADatabaseThatGoesAwayIsA503) {
  ASSERT_FALSE(testing::test_server_url().empty());
  testing::ScratchDatabase database("test_service");
  const std::string& url = database.url();
  pg::Connection& admin = database.admin();
  testing::TempDir dir;
  prepare(dir / "models", "--db " + url);
  {
    Running running({.models_dir = dir / "models", .store = {.db = url}, .port = 0});
    auto client = running.client();
    const std::string png = file_bytes(test_image("blob/000.png"));
    const auto first = client.Post("/v1/inspect?category=synthetic", png, "image/png");
    ASSERT_EQ(first->status, 200) << first->body;
    EXPECT_TRUE(json_of(first)["report_id"].is_number());
    // Its connections ended by the server (a restart): searches run again on new ones, and the
    // report is stored or, if its write met a lost connection, kept in the spool.
    admin.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
        "'test_service' AND application_name = 'patchvec'");
    const auto again = client.Post("/v1/inspect?category=synthetic", png, "image/png");
    ASSERT_TRUE(again);
    ASSERT_EQ(again->status, 200) << again->body;
    EXPECT_TRUE(json_of(again)["report_id"].is_number() ||
                json_of(again)["report_pending"].get<bool>())
        << again->body;

    // A database that refuses connections: inspections are a 503 that says only that (no host,
    // user or database), not ready (503), yet alive; ready again after.
    admin.exec("ALTER DATABASE test_service ALLOW_CONNECTIONS false");
    admin.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'test_service'");
    const auto down = client.Post("/v1/inspect?category=synthetic", png, "image/png");
    ASSERT_TRUE(down);
    EXPECT_EQ(down->status, 503) << down->body;
    const std::string error = json_of(down)["error"];
    EXPECT_NE(error.find("store or model failed"), std::string::npos) << error;
    for (const char* secret : {"patchvec@", "127.0.0.1", "test_service", "PostgreSQL"}) {
      EXPECT_EQ(down->body.find(secret), std::string::npos) << secret << " in " << down->body;
    }
    // Readiness is checked every second in the background: it turns within a few seconds.
    const auto not_ready = testing::health_when(client, 503);
    EXPECT_EQ(not_ready->status, 503) << not_ready->body;
    EXPECT_EQ(json_of(not_ready)["store_ok"], false);
    EXPECT_EQ(not_ready->body.find("127.0.0.1"), std::string::npos);
    EXPECT_EQ(client.Get("/livez")->status, 200);
    admin.exec("ALTER DATABASE test_service ALLOW_CONNECTIONS true");
    const auto ready = testing::health_when(client, 200);
    EXPECT_EQ(ready->status, 200) << ready->body;
    EXPECT_EQ(json_of(ready)["store_ok"], true);
    const auto back = client.Post("/v1/inspect?category=synthetic", png, "image/png");
    EXPECT_EQ(back->status, 200) << back->body;
  }
}

}  // namespace
}  // namespace pv
