// The PostgreSQL schema as numbered migrations (sql/NNN_name.sql), compiled into the binary and
// applied in order by the PostgreSQL store; the version reached is patchvec_meta's
// schema_version. An applied migration is never edited: a change is the next file.
#pragma once

#include <span>

namespace pv::pg {

struct Migration {
  int version;       // NNN
  const char* name;  // the file's name
  const char* sql;   // its statements, run in one transaction
};

std::span<const Migration> migrations();  // in version order

}  // namespace pv::pg
