// Published model files in PostgreSQL (sql/004_models.sql): one row per revision, the file's bytes
// in a bytea sent and read in binary, NOTIFY patchvec_models at each publication.
#include <cstring>

#include <patchvec/error.h>
#include <patchvec/model_registry.h>

#include "store/postgres.h"
#include "store/schema.h"
#include "util/sha256.h"

namespace pv {
namespace {

constexpr std::int64_t kPublishLock = 7270728;  // pg_advisory_xact_lock(key, category's hash)
constexpr const char* kChannel = "patchvec_models";
constexpr const char* kColumns =
    "category, revision, sha256, bytes, "
    "to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), source";

PublishedModel published_from(const pg::Result& r, int row) {
  return {.category = r.text(row, 0),
          .revision = std::stoll(r.text(row, 1)),
          .sha256 = r.text(row, 2),
          .bytes = std::stoll(r.text(row, 3)),
          .created = r.text(row, 4),
          .source = r.text(row, 5)};
}

class PostgresModelRegistry final : public ModelRegistry {
 public:
  // Revisions are read from any host that answers, a standby first; published on the primary,
  // which alone sends the notifications (a standby's listeners hear nothing).
  explicit PostgresModelRegistry(const std::string& url)
      : url_(url), reads_(url, 2, "prefer-standby"), writes_(url, 1, "read-write", /*lazy=*/true) {
    pg::ensure_schema(reads_, writes_);
  }

  PublishedModel publish(const std::string& category, std::span<const std::byte> content,
                         const std::string& source, bool* added) override {
    if (content.empty()) throw Error("an empty model file cannot be published");
    const std::string sha256 = sha256_hex(content);
    const auto db = writes_.lease();
    pg::Transaction t(*db);
    // One publisher of a category at a time: revisions are numbered without gaps or conflicts.
    db->exec("SELECT pg_advisory_xact_lock(" + std::to_string(kPublishLock) + ", hashtext($1))",
             {category});
    const pg::Result newest = db->exec(std::string("SELECT ") + kColumns +
                                           " FROM models WHERE category = $1 "
                                           "ORDER BY revision DESC LIMIT 1",
                                       {category});
    if (newest.rows() > 0 && newest.text(0, 2) == sha256) {
      if (added != nullptr) *added = false;
      return published_from(newest, 0);
    }
    const std::int64_t revision = newest.rows() > 0 ? std::stoll(newest.text(0, 1)) + 1 : 1;
    const pg::Result row = db->exec(
        std::string("INSERT INTO models (category, revision, sha256, bytes, source, content) "
                    "VALUES ($1, $2, $3, $4, $5, $6) RETURNING ") +
            kColumns,
        {category, std::to_string(revision), sha256, std::to_string(content.size()), source},
        content);
    db->exec("SELECT pg_notify($1, $2)", {kChannel, category + " " + std::to_string(revision)});
    t.commit();  // the notification is sent now, with the row visible
    if (added != nullptr) *added = true;
    return published_from(row, 0);
  }

  std::vector<PublishedModel> list(bool all_revisions) const override {
    const std::string sql =
        all_revisions
            ? std::string("SELECT ") + kColumns + " FROM models ORDER BY category, revision"
            : std::string("SELECT DISTINCT ON (category) ") + kColumns +
                  " FROM models ORDER BY category, revision DESC";
    const pg::Result r = reads_.read([&](pg::Connection& db) { return db.exec(sql); });
    std::vector<PublishedModel> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(published_from(r, i));
    return out;
  }

  std::vector<std::byte> content(const std::string& category,
                                 std::int64_t revision) const override {
    const pg::Result r = reads_.read([&](pg::Connection& db) {
      return db.exec_binary(
          "SELECT content, sha256, bytes::text FROM models WHERE category = $1 AND revision = $2",
          {category, std::to_string(revision)});
    });
    const std::string what = "published model " + category + " revision " +
                             std::to_string(revision) + " in PostgreSQL " + reads_.name();
    if (r.rows() == 0) throw Error(what + " does not exist");
    const std::string bytes = r.text(0, 0);
    std::vector<std::byte> out(bytes.size());
    std::memcpy(out.data(), bytes.data(), bytes.size());
    if (std::to_string(out.size()) != r.text(0, 2) || sha256_hex(out) != r.text(0, 1)) {
      throw Error(what + " is damaged: its bytes do not match its recorded size and SHA-256");
    }
    return out;
  }

  bool wait_for_publish(std::chrono::milliseconds timeout) override {
    if (!listener_) {
      auto connection = std::make_unique<pg::Connection>(url_, "read-write");
      connection->exec(std::string("LISTEN ") + kChannel);
      listener_ = std::move(connection);
      return true;  // whatever was published before listening began is unknown
    }
    try {
      return !listener_->wait_for_notifications(timeout).empty();
    } catch (const Error&) {
      listener_.reset();  // the next call reconnects
      throw;
    }
  }

  std::string location() const override { return "PostgreSQL " + writes_.name(); }

 private:
  std::string url_;
  mutable pg::ConnectionPool reads_;
  mutable pg::ConnectionPool writes_;
  std::unique_ptr<pg::Connection> listener_;
};

}  // namespace

std::unique_ptr<ModelRegistry> ModelRegistry::open(const std::string& url) {
  return std::make_unique<PostgresModelRegistry>(url);
}

}  // namespace pv
