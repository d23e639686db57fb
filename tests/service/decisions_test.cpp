// The operator's decisions over HTTP: resolving reports (roles, bad requests, conflicts), with
// the embedded store and with a real PostgreSQL.
#include <algorithm>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <patchvec/service.h>

#include "service/service_testing.h"
#include "store/pg_testing.h"
#include "store/postgres.h"
#include "store/store_testing.h"

namespace pv {
namespace {

using testing::json_of;

std::string image(const std::string& name) {
  return testing::read_text(testing::patchcore_test_image(name));
}

// A report for `name`: the services below ask more similarity than any image has (1.01), so
// every image is reported, good ones too.
std::int64_t reported(httplib::Client& client, const std::string& name) {
  const auto r =
      client.Post("/v1/inspect?category=synthetic&name=" + name, image(name), "image/png");
  EXPECT_EQ(r->status, 200) << r->body;
  const auto id = json_of(r)["report_id"];
  EXPECT_TRUE(id.is_number()) << r->body;
  return id.is_number() ? id.get<std::int64_t>() : 0;
}

httplib::Result resolve(httplib::Client& client, std::int64_t id, const std::string& body) {
  return client.Post("/v1/reports/" + std::to_string(id) + "/resolve", body, "application/json");
}

// Everything about resolving through the API, for a running service over any store.
void decide_over_http(testing::RunningService& running) {
  auto client = running.client();
  const std::int64_t defect = reported(client, "blob/000.png");
  const std::int64_t good = reported(client, "good/002.png");

  // The reported image itself is kept and shown.
  const auto picture = client.Get("/v1/reports/" + std::to_string(defect) + "/image");
  ASSERT_EQ(picture->status, 200);
  EXPECT_EQ(picture->body.substr(1, 3), "PNG");
  const auto open = json_of(client.Get("/v1/reports?status=open"));
  EXPECT_EQ(open.size(), 2u);
  EXPECT_EQ(client.Get("/v1/reports?status=maybe")->status, 400);

  const auto expect = [&](const httplib::Result& r, int status, const std::string& words) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_NE(r->body.find(words), std::string::npos) << r->body;
  };
  expect(resolve(client, defect, "{not json"), 400, "not JSON");
  expect(resolve(client, defect, R"({"resolution": "maybe"})"), 400, "resolution must be");
  expect(resolve(client, defect, R"({"resolution": "defect"})"), 400, "defect's type");
  expect(resolve(client, defect, R"({"resolution": "defect", "defect": 7})"), 400, "must be text");
  expect(resolve(client, 999999, R"({"resolution": "false_alarm"})"), 404, "no report");
  expect(client.Post("/v1/reports/abc/resolve", "{}", "application/json"), 400, "whole number");

  const auto done = resolve(client, defect, R"({"resolution": "defect", "defect": "scratch",
                                                "note": "<b>edge</b>"})");
  ASSERT_EQ(done->status, 200) << done->body;
  const auto body = json_of(done);
  EXPECT_EQ(body["status"], "resolved");
  EXPECT_EQ(body["defect"], "scratch");
  EXPECT_EQ(body["note"], "<b>edge</b>");  // data, shown as text by the page
  EXPECT_TRUE(body["image_id"].is_number());
  expect(resolve(client, defect, R"({"resolution": "false_alarm"})"), 409, "resolved already");

  // The labelled defect is found for a similar image from now on.
  const auto similar =
      json_of(client.Post("/v1/inspect?category=synthetic", image("blob/001.png"), "image/png"));
  bool named = false;
  for (const auto& m : similar["matches"]) named |= m["defect"] == "scratch";
  EXPECT_TRUE(named) << similar.dump(2);

  // Decisions racing on one report (two operators, a defect and a false alarm): one 200, the
  // others 409, and only the winner's image stored (before: 1 x 200, 3 x 409, 4 images stored).
  const std::int64_t raced = reported(client, "good/001.png");
  const auto before = json_of(client.Get("/v1/categories"))[0]["stored_images"].get<int>();
  std::vector<int> statuses(4);
  std::vector<std::thread> deciders;
  for (std::size_t i = 0; i < statuses.size(); ++i) {
    deciders.emplace_back([&, i] {
      auto own = running.client();
      const auto r = resolve(own, raced,
                             i % 2 ? R"({"resolution": "false_alarm"})"
                                   : R"({"resolution": "defect", "defect": "race"})");
      statuses[i] = r ? r->status : 0;
    });
  }
  for (auto& t : deciders) t.join();
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200), 1);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 409), 3);
  EXPECT_EQ(json_of(client.Get("/v1/categories"))[0]["stored_images"], before + 1);

  const auto categories = json_of(client.Get("/v1/categories"));
  const auto stored = categories[0]["stored_images"].get<int>();
  ASSERT_EQ(resolve(client, good, R"({"resolution": "false_alarm"})")->status, 200);
  EXPECT_EQ(json_of(client.Get("/v1/categories"))[0]["stored_images"], stored + 1);
  EXPECT_EQ(json_of(client.Get("/v1/reports?status=open")).size(), 1u);  // the similar one
}

class Decisions : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::TempDir>();
    testing::prepare_models(*dir_ / "models",
                            "--store " + (*dir_ / "models" / "store.pvs").string());
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static std::unique_ptr<testing::TempDir> dir_;
};
std::unique_ptr<testing::TempDir> Decisions::dir_;

TEST_F(Decisions, ResolvingReportsWithTheEmbeddedStore) {
  testing::RunningService running(
      {.models_dir = *dir_ / "models", .port = 0, .inspect = {.min_similarity = 1.01}});
  decide_over_http(running);
}

TEST_F(Decisions, OnlyOperatorsDecide) {
  const std::string inspector = "inspector-token-0123456789", lead = "lead-token-0123456789abcd";
  testing::write_text(*dir_ / "tokens", inspector + " inspect\n" + lead + " operator ana\n");
  testing::RunningService running({.models_dir = *dir_ / "models",
                                   .port = 0,
                                   .auth_tokens = *dir_ / "tokens",
                                   .inspect = {.min_similarity = 1.01}});
  auto client = running.client();
  client.set_bearer_token_auth(inspector);
  const std::int64_t id = reported(client, "blob/002.png");
  const auto refused = resolve(client, id, R"({"resolution": "false_alarm"})");
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_NE(refused->body.find("needs operator"), std::string::npos) << refused->body;
  client.set_bearer_token_auth(lead);
  // The token says who decides, whatever the body claims.
  const auto done = resolve(client, id, R"({"resolution": "false_alarm", "by": "someone else"})");
  ASSERT_EQ(done->status, 200) << done->body;
  EXPECT_EQ(json_of(done)["resolved_by"], "ana");
}

TEST(DecisionsWithPostgres, ResolvingReports) {
  ASSERT_FALSE(testing::test_server_url().empty());
  const testing::ScratchDatabase database("test_decisions");
  const std::string& url = database.url();
  testing::TempDir dir;
  testing::prepare_models(dir / "models", "--db " + url);
  {
    testing::RunningService running({.models_dir = dir / "models",
                                     .store = {.db = url},
                                     .port = 0,
                                     .inspect = {.min_similarity = 1.01}});
    decide_over_http(running);
  }
}

}  // namespace
}  // namespace pv
