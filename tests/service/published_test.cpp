// Services that serve the models published in PostgreSQL (patchvec publish; serve --db without
// --models): the newest revision, swapped in while requests run, damaged revisions refused.
#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/model.h>
#include <patchvec/service.h>

#include "service/service_testing.h"
#include "store/pg_testing.h"
#include "store/postgres.h"
#include "store/store_testing.h"
#include "util/sha256.h"

namespace pv {
namespace {

using testing::json_of;

class PublishedModels : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(testing::test_server_url().empty())
        << "no server: run scripts/pgvector-server.sh start";
    // A database per test: CTest runs them at once.
    database_ =
        std::make_unique<testing::ScratchDatabase>("test_published_" + std::to_string(::getpid()));
    url_ = database_->url();
    testing::prepare_models(dir_ / "models", "--db " + url_);
    model_ = dir_ / "models" / "synthetic.pvm";
  }
  void TearDown() override { database_.reset(); }

  // The fixture model with another image threshold: a revision clients can tell apart.
  std::filesystem::path variant(float threshold) const {
    Model model = Model::load(model_);
    Thresholds thresholds = *model.info().thresholds;
    thresholds.image = threshold;
    model.set_thresholds(thresholds);
    auto path = dir_ / ("synthetic-" + std::to_string(threshold) + ".pvm");
    model.save(path);
    return path;
  }

  nlohmann::json publish(const std::filesystem::path& file) const {
    const CommandResult run =
        patchvec("publish --json --db " + url_ + " " + file.string(), /*merge_stderr=*/false);
    EXPECT_EQ(run.exit_code, 0) << run.output;
    return nlohmann::json::parse(run.output)[0];
  }

  ServiceOptions options() const {
    return {.store = {.db = url_},
            .model_cache_dir = dir_ / "cache",
            .report_images_dir = dir_ / "report-images",
            .port = 0};
  }

  // The served revision of the fixture category, as /v1/categories says.
  static nlohmann::json served(httplib::Client& client) {
    const auto r = client.Get("/v1/categories");
    if (!r || r->status != 200) return nullptr;
    return json_of(r)[0];
  }

  static bool wait_for_revision(httplib::Client& client, std::int64_t revision) {
    for (int i = 0; i < 100; ++i) {
      const auto category = served(client);
      if (category.is_object() && category["published"].is_object() &&
          category["published"]["revision"] == revision) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ScratchDatabase> database_;
  std::string url_;
  std::filesystem::path model_;
};

TEST_F(PublishedModels, PublishIsIdempotentAndListed) {
  const auto first = publish(model_);
  EXPECT_EQ(first["category"], "synthetic");
  EXPECT_EQ(first["revision"], 1);
  EXPECT_EQ(first["sha256"], sha256_file_hex(model_));
  EXPECT_TRUE(first["added"].get<bool>());
  const auto again = publish(model_);
  EXPECT_EQ(again["revision"], 1);
  EXPECT_FALSE(again["added"].get<bool>());
  publish(variant(1e6f));
  const CommandResult list = patchvec("models --json --all --db " + url_, false);
  ASSERT_EQ(list.exit_code, 0) << list.output;
  const auto rows = nlohmann::json::parse(list.output);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["revision"], 2);
  const CommandResult table = patchvec("models --db " + url_);
  EXPECT_NE(table.output.find("synthetic"), std::string::npos) << table.output;

  // A file that is no model is refused before anything is stored, naming it.
  testing::write_text(dir_ / "broken.pvm", "not a model");
  const CommandResult broken = patchvec("publish --db " + url_ + " " + model_.string() + " " +
                                        (dir_ / "broken.pvm").string());
  EXPECT_NE(broken.exit_code, 0);
  EXPECT_NE(broken.output.find("broken.pvm"), std::string::npos) << broken.output;
  EXPECT_EQ(
      nlohmann::json::parse(patchvec("models --json --all --db " + url_, false).output).size(), 2u);
}

TEST_F(PublishedModels, ServiceFollowsNewRevisionsWithoutAFailedRequest) {
  publish(model_);
  testing::RunningService running(options());
  auto client = running.client();
  const auto category = served(client);
  ASSERT_TRUE(category.is_object());
  EXPECT_EQ(category["published"]["revision"], 1);
  EXPECT_EQ(category["sha256"], sha256_file_hex(model_));

  // Clients inspect all along while a new revision is published and swapped in.
  const std::string png = testing::read_text(testing::patchcore_test_image("blob/000.png"));
  std::atomic<bool> done = false;
  std::atomic<int> ok = 0, failed = 0;
  std::vector<std::thread> clients;
  clients.reserve(2);
  for (int c = 0; c < 2; ++c) {
    clients.emplace_back([&] {
      auto mine = running.client();
      while (!done) {
        const auto r = mine.Post("/v1/inspect?category=synthetic", png, "image/png");
        (r && r->status == 200 ? ok : failed)++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto published = std::chrono::steady_clock::now();
  publish(variant(1e6f));  // a threshold no image reaches
  const bool swapped = wait_for_revision(client, 2);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - published).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  done = true;
  for (auto& t : clients) t.join();
  ASSERT_TRUE(swapped) << "revision 2 was not served within 10 s";
  EXPECT_LT(seconds, 5.0);
  EXPECT_EQ(failed, 0);
  EXPECT_GT(ok, 2);
  const auto after = client.Post("/v1/inspect?category=synthetic", png, "image/png");
  ASSERT_EQ(after->status, 200) << after->body;
  EXPECT_EQ(json_of(after)["threshold"].get<double>(), 1e6);

  // A damaged revision (bytes that are no model, with their own correct hash) is refused with a
  // log line; the service keeps revision 2, and takes the next good one.
  ::testing::internal::CaptureStderr();
  const std::string garbage = "this is no model file";
  pg::Connection db(url_);
  db.exec(
      "INSERT INTO models (category, revision, sha256, bytes, source, content) "
      "VALUES ('synthetic', 3, $1, $2, 'forged', $3::bytea)",
      {sha256_hex(std::as_bytes(std::span(garbage))), std::to_string(garbage.size()), garbage});
  db.exec("NOTIFY patchvec_models, 'synthetic 3'");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  publish(variant(2e6f));
  const bool took_next = wait_for_revision(client, 4);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(took_next) << log;
  EXPECT_NE(log.find("synthetic revision 3"), std::string::npos) << log;
  EXPECT_NE(log.find("does not load"), std::string::npos) << log;
  EXPECT_NE(log.find("still serving revision 2"), std::string::npos) << log;
}

TEST_F(PublishedModels, AServiceStartsOnTheNewestRevisionThatLoads) {
  publish(model_);
  const std::string garbage = "damaged";
  pg::Connection db(url_);
  db.exec(
      "INSERT INTO models (category, revision, sha256, bytes, source, content) "
      "VALUES ('synthetic', 2, $1, $2, 'forged', $3::bytea)",
      {sha256_hex(std::as_bytes(std::span(garbage))), std::to_string(garbage.size()), garbage});
  testing::RunningService running(options());
  auto client = running.client();
  EXPECT_EQ(served(client)["published"]["revision"], 1);

  // Without models anywhere: one clear error.
  db.exec("DELETE FROM models");
  try {
    InspectionService service(options());
    ADD_FAILURE() << "a service started without models";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("patchvec publish"), std::string::npos) << e.what();
  }
  try {
    InspectionService service({.port = 0});
    ADD_FAILURE() << "a service started without --models and --db";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--models"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pv
