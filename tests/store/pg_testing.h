// A database of its own for each test on the test server (scripts/pgvector-server.sh, started by
// CTest's pgvector fixture): created before the test, dropped after it.
#pragma once

#include <algorithm>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "store/postgres.h"
#include "store/store_testing.h"

namespace pv::testing {

// postgresql://user:pass@host:port/db -> the same with another database.
inline std::string with_database(const std::string& url, const std::string& database) {
  return url.substr(0, url.rfind('/') + 1) + database;
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
    admin_->exec("DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)");
    admin_->exec("CREATE DATABASE " + database_ + template_clause());
    url_ = with_database(base_url_, database_);
  }
  void TearDown() override {
    if (admin_) admin_->exec("DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)");
  }
  virtual std::string template_clause() const { return ""; }  // template1 has pgvector

  std::string base_url_, url_, database_;
  std::unique_ptr<pg::Connection> admin_;
};

}  // namespace pv::testing
