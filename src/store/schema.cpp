#include "store/schema.h"

#include <chrono>
#include <string>
#include <thread>

#include <patchvec/error.h>
#include <patchvec/store.h>

#include "store/migrations.h"

namespace pv::pg {
namespace {

// 0 for an empty database.
int schema_version(Connection& db) {
  if (db.exec("SELECT to_regclass('patchvec_meta')").text(0, 0).empty()) return 0;
  const Result r = db.exec("SELECT value FROM patchvec_meta WHERE key = 'schema_version'");
  return r.rows() ? std::stoi(r.text(0, 0)) : 0;
}

void check_not_newer(Connection& db, int version) {
  const int newest = migrations().back().version;
  if (version > newest) {
    throw Error("PostgreSQL " + db.name() + ": schema version " + std::to_string(version) +
                " was written by a newer patchvec (this one knows version " +
                std::to_string(newest) + ")");
  }
}

}  // namespace

bool schema_is_current(Connection& db) {
  const int version = schema_version(db);
  check_not_newer(db, version);
  return version == migrations().back().version;
}

void ensure_schema(Connection& db) {
  if (schema_is_current(db)) return;
  const Result ext = db.exec("SELECT 1 FROM pg_extension WHERE extname = 'vector'");
  if (ext.rows() == 0) {
    try {
      db.exec("CREATE EXTENSION IF NOT EXISTS vector");
    } catch (const Error& e) {
      throw Error("PostgreSQL " + db.name() +
                  ": the database has no vector extension (pgvector) and this role cannot "
                  "create it; ask its administrator to run CREATE EXTENSION vector (" +
                  e.what() + ")");
    }
  }
  for (const Migration& migration : migrations()) {
    Transaction t(db);
    db.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kSchemaLock) + ")");
    const int version = schema_version(db);  // another process may have been first
    check_not_newer(db, version);
    if (migration.version <= version) continue;
    db.exec_script(migration.sql, migration.name);
    db.exec(
        "INSERT INTO patchvec_meta VALUES ('schema_version', $1) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        {std::to_string(migration.version)});
    t.commit();
  }
}

void ensure_schema(ConnectionPool& reads, ConnectionPool& writes) {
  if (reads.read([](Connection& db) { return schema_is_current(db); })) return;
  ensure_schema(*writes.lease());
  // A standby shows the new tables once it has replayed them, usually within milliseconds.
  for (int i = 0; i < 300; ++i) {
    if (reads.read([](Connection& db) { return schema_is_current(db); })) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw UnavailableError("PostgreSQL " + reads.name() +
                         ": the schema written on the primary did not reach the host reads go "
                         "to within 30 s (is the standby replaying?)");
}

}  // namespace pv::pg
