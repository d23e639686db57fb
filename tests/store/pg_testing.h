// A database of its own for each test on the test server (scripts/pgvector-server.sh, started by
// CTest's pgvector fixture): created before the test, dropped after it.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

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

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_url_ = testing::test_server_url();
    ASSERT_FALSE(base_url_.empty()) << "no server: run scripts/pgvector-server.sh start";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    database_ = "test_" + std::string(info->name());
    std::transform(database_.begin(), database_.end(), database_.begin(), ::tolower);
    admin_ = std::make_unique<pg::Connection>(base_url_);
    drop_database(*admin_, database_);
    admin_->exec("CREATE DATABASE " + database_ + template_clause());
    url_ = with_database(base_url_, database_);
  }
  void TearDown() override {
    if (admin_) drop_database(*admin_, database_);
  }
  virtual std::string template_clause() const { return ""; }  // template1 has pgvector

  std::string base_url_, url_, database_;
  std::unique_ptr<pg::Connection> admin_;
};

}  // namespace pv::testing
