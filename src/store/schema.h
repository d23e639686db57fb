// The PostgreSQL schema every PatchVec table lives in (sql/NNN_*.sql, store/migrations.h): what
// the vector store and the model registry both open a database with.
#pragma once

#include <cstdint>

#include "store/postgres.h"

namespace pv::pg {

inline constexpr std::int64_t kSchemaLock = 7270727;  // pg_advisory_xact_lock key of schema changes

// Creates the vector extension if missing and applies the migrations this database lacks, each in
// a transaction of its own under kSchemaLock (one process at a time). A database already at the
// newest version is only read (a hot standby can be opened). Throws pv::Error for a database
// without pgvector (and no right to create it) or with a schema of a newer patchvec.
void ensure_schema(Connection& db);
// True when the database holds this patchvec's newest schema (nothing to migrate); reads only.
// Throws pv::Error for a schema of a newer patchvec.
bool schema_is_current(Connection& db);

// ensure_schema() for a store that reads on `reads` (perhaps a standby) and writes on `writes`:
// migrates on the primary only when the read side is not current, then waits (up to 30 s) until
// the read side has replayed it. Throws UnavailableError when it does not in time.
void ensure_schema(ConnectionPool& reads, ConnectionPool& writes);

}  // namespace pv::pg
