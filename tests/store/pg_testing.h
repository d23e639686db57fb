// A database of its own for each test on the test server (scripts/pgvector-server.sh, started by
// CTest's pgvector fixture): created before the test, dropped after it.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include <patchvec/error.h>

#include "store/postgres.h"
#include "store/store_testing.h"

namespace pv::testing {

// postgresql://user:pass@host:port/db -> the same with another database.
inline std::string with_database(const std::string& url, const std::string& database) {
  return url.substr(0, url.rfind('/') + 1) + database;
}

// DROP DATABASE ... WITH (FORCE), again for up to 5 s while it fails: an autovacuum worker (the
// superuser's) may be in the database, which a non-superuser cannot terminate.
inline void drop_database(pg::Connection& admin, const std::string& database) {
  for (int attempt = 0;; ++attempt) {
    try {
      admin.exec("DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
      return;
    } catch (const Error&) {
      if (attempt >= 50) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

// A database `name` of its own on the test server: created empty (after dropping what an earlier
// run left), dropped on destruction. `create_options` follow CREATE DATABASE name (template1, the
// default template, has pgvector). Throws pv::Error when no server runs.
class ScratchDatabase {
 public:
  explicit ScratchDatabase(std::string name, const std::string& create_options = "")
      : base_url_(test_server_url()), name_(std::move(name)) {
    if (base_url_.empty()) throw Error("no server: run scripts/pgvector-server.sh start");
    admin_ = std::make_unique<pg::Connection>(base_url_);
    drop_database(*admin_, name_);
    admin_->exec("CREATE DATABASE " + name_ + create_options);
    url_ = with_database(base_url_, name_);
  }
  ~ScratchDatabase() {
    try {
      drop_database(*admin_, name_);
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;

  const std::string& base_url() const { return base_url_; }  // the server's own database
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  pg::Connection& admin() { return *admin_; }  // connected to base_url()

 private:
  std::string base_url_, name_, url_;
  std::unique_ptr<pg::Connection> admin_;
};

// A ScratchDatabase per test, named after it.
class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(testing::test_server_url().empty())
        << "no server: run scripts/pgvector-server.sh start";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "test_" + std::string(info->name());
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    scratch_ = std::make_unique<ScratchDatabase>(name, template_clause());
    base_url_ = scratch_->base_url();
    url_ = scratch_->url();
    database_ = scratch_->name();
    admin_ = &scratch_->admin();
  }
  void TearDown() override { scratch_.reset(); }
  virtual std::string template_clause() const { return ""; }  // template1 has pgvector

  std::string base_url_, url_, database_;
  pg::Connection* admin_ = nullptr;  // scratch_'s

 private:
  std::unique_ptr<ScratchDatabase> scratch_;
};

}  // namespace pv::testing
