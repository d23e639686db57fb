// Model files kept in PostgreSQL: every category's published revisions, so that inspection
// services on many machines serve the same models and follow new ones (patchvec publish,
// patchvec models, patchvec serve --db without --models).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace pv {

struct PublishedModel {
  std::string category;
  std::int64_t revision = 0;  // 1, 2, ... per category, one per publication
  std::string sha256;         // of the file's bytes, hex
  std::int64_t bytes = 0;
  std::string created;  // ISO 8601, UTC
  std::string source;   // the file it was published from, for people
};

// Thread-safety: every member function may be called from several threads at once, except
// wait_for_publish(), which one thread at a time may call.
class ModelRegistry {
 public:
  // Connects to `url` (a libpq URL or connection string; PG* variables fill in the rest) and
  // creates or migrates the schema. Throws pv::Error naming the server for an unreachable server,
  // refused credentials or a schema of a newer patchvec.
  static std::unique_ptr<ModelRegistry> open(const std::string& url);
  virtual ~ModelRegistry() = default;

  // Stores `content` as the next revision of `category` and notifies the services listening,
  // unless it is byte for byte the category's newest revision already: then that one is
  // returned and `*added` (if given) is false. The caller checks that `content` is a valid model
  // of `category` (patchvec publish loads it first). Atomic: a revision is whole or absent.
  virtual PublishedModel publish(const std::string& category, std::span<const std::byte> content,
                                 const std::string& source, bool* added = nullptr) = 0;
  // Every category's newest revision (`all_revisions`: every revision), by category, then
  // revision.
  virtual std::vector<PublishedModel> list(bool all_revisions = false) const = 0;
  // The bytes of one revision. Throws pv::Error when it does not exist, or when its bytes do not
  // have the recorded size and SHA-256 (naming category and revision).
  virtual std::vector<std::byte> content(const std::string& category,
                                         std::int64_t revision) const = 0;
  // Waits up to `timeout` for a publication (LISTEN on a connection of its own, opened by the
  // first call) and returns true if one came. A lost connection is reopened by the next call,
  // which then returns true at once: publications may have been missed meanwhile. Throws
  // pv::Error when the server cannot be reached.
  virtual bool wait_for_publish(std::chrono::milliseconds timeout) = 0;
  virtual std::string location() const = 0;  // "PostgreSQL user@host:port/db", for messages
};

}  // namespace pv
