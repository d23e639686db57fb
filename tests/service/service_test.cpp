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

#include "cli/run.h"
#include "store/postgres.h"
#include "store/store_testing.h"
#include "testing.h"

namespace pv {
namespace {

using testing::patchcore_test_image;
std::string data() {
  return testing::patchcore_data();
}
std::string test_image(const std::string& name) {
  return patchcore_test_image(name);
}

// A trained model (the fixture category, resnet18) indexed into `store_args`.
void prepare(const std::filesystem::path& models, const std::string& store_args) {
  const std::string weights =
      (testing::fixture_dir() / "patchcore" / "resnet18.safetensors").string();
  const CommandResult train =
      patchvec("train -q --data " + data() + " --category synthetic --backbone resnet18 " +
               "--weights " + weights + " --out " + models.string());
  ASSERT_EQ(train.exit_code, 0) << train.output;
  const CommandResult index = patchvec("index -q --model " + (models / "synthetic.pvm").string() +
                                       " --data " + data() + " " + store_args);
  ASSERT_EQ(index.exit_code, 0) << index.output;
}

// The service on a free port, served by a thread, stopped on destruction.
class Running {
 public:
  explicit Running(ServiceOptions options) : service_(std::move(options)) {
    port_ = service_.bind();
    thread_ = std::thread([this] { service_.serve(); });
  }
  ~Running() {
    service_.stop();
    thread_.join();
  }
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

std::string file_bytes(const std::string& path) {
  return testing::read_text(path);
}

nlohmann::json json_of(const httplib::Result& r) {
  return nlohmann::json::parse(r->body);
}

class ServiceApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::TempDir>();
    prepare(*dir_ / "models", "--store " + (*dir_ / "models" / "store.pvs").string());
    ServiceOptions options{.models_dir = *dir_ / "models", .port = 0, .max_image_side = 2000};
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
         "not a PNG or JPEG");
  expect(client.Post("/v1/inspect?category=wood", png, "image/png"), 404, "unknown category");
  expect(client.Post("/v1/inspect", png, "image/png"), 400, "missing ?category=");
  // A PNG header that claims 50000 x 50000 pixels: refused before anything is decoded.
  std::string huge = png.substr(0, 33);
  huge[16] = 0, huge[17] = 0, huge[18] = '\xc3', huge[19] = '\x50';
  huge[20] = 0, huge[21] = 0, huge[22] = '\xc3', huge[23] = '\x50';
  expect(client.Post("/v1/inspect?category=synthetic", huge, "image/png"), 413, "50000x50000");
  expect(client.Post("/v1/inspect?category=synthetic", png.substr(0, png.size() / 2), "image/png"),
         400, "corrupt or truncated PNG");
  expect(client.Get("/v1/images/999999"), 404, "no stored image");
  expect(client.Get("/v1/images/abc"), 400, "must be a number");
  expect(client.Get("/v1/reports?limit=many"), 400, "limit");
  expect(client.Get("/nothing/here"), 404, "no such endpoint");
  EXPECT_EQ(client.Get("/healthz")->status, 200);  // still alive
}

TEST_F(ServiceApi, ServesThePage) {
  const auto page = running_->client().Get("/");
  ASSERT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<title>PatchVec inspection</title>"), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
}

TEST_F(ServiceApi, ConcurrentRequestsAllSucceed) {
  const std::string png = file_bytes(test_image("good/001.png"));
  std::vector<std::thread> clients;
  std::atomic<int> ok = 0;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      auto client = running_->client();
      for (int i = 0; i < 3; ++i) {
        const auto r = client.Post("/v1/inspect?category=synthetic", png, "image/png");
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok, 12);
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

TEST(ServiceSetUp, MissingFolderAndNoModelsAreErrors) {
  testing::TempDir dir;
  EXPECT_THROW(InspectionService({.models_dir = dir / "none"}), Error);
  EXPECT_THROW(InspectionService({.models_dir = dir.path()}), Error);
}

TEST(ServiceWithPostgres, ADatabaseThatGoesAwayIsA503) {
  const std::string base = testing::test_server_url();
  ASSERT_FALSE(base.empty());
  pg::Connection admin(base);
  admin.exec("DROP DATABASE IF EXISTS test_service WITH (FORCE)");
  admin.exec("CREATE DATABASE test_service");
  const std::string url = base.substr(0, base.rfind('/') + 1) + "test_service";
  testing::TempDir dir;
  prepare(dir / "models", "--db " + url);
  {
    Running running({.models_dir = dir / "models", .db = url, .port = 0});
    auto client = running.client();
    const std::string png = file_bytes(test_image("blob/000.png"));
    const auto first = client.Post("/v1/inspect?category=synthetic", png, "image/png");
    ASSERT_EQ(first->status, 200) << first->body;
    EXPECT_TRUE(json_of(first)["report_id"].is_number());
    admin.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
        "'test_service' AND application_name = 'patchvec'");
    const auto down = client.Post("/v1/inspect?category=synthetic", png, "image/png");
    ASSERT_TRUE(down);
    EXPECT_EQ(down->status, 503) << down->body;
    EXPECT_NE(json_of(down)["error"].get<std::string>().find("PostgreSQL"), std::string::npos);
    EXPECT_EQ(client.Get("/healthz")->status, 200);
    // The next request reconnects.
    const auto back = client.Post("/v1/inspect?category=synthetic", png, "image/png");
    EXPECT_EQ(back->status, 200) << back->body;
  }
  admin.exec("DROP DATABASE test_service WITH (FORCE)");
}

}  // namespace
}  // namespace pv
