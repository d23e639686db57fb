// A thin RAII layer over libpq, PostgreSQL's own C client: connections, parameterised queries,
// transactions and binary COPY. Every error is a pv::Error that names the server (never the
// password) and carries the server's message.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <patchvec/store.h>

struct pg_conn;
struct pg_result;

namespace pv::pg {

// One result: rows of text values (NULL = nullopt).
class Result {
 public:
  explicit Result(pg_result* result);
  int rows() const;
  std::optional<std::string> get(int row, int column) const;
  std::string text(int row, int column) const;  // "" for NULL

 private:
  std::shared_ptr<pg_result> result_;
};

using Params = std::vector<std::optional<std::string>>;

class Connection {
 public:
  // `url`: a libpq URL or connection string; the PG* environment variables fill in the rest.
  // `session` (libpq's target_session_attrs, e.g. "read-write", "prefer-standby") overrides the
  // URL's: which of its hosts to take. Throws UnavailableError when no host answers as asked.
  explicit Connection(const std::string& url, const std::string& session = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Result exec(const std::string& sql, const Params& params = {});
  // `params` as text, then `bytes` as one more parameter in binary (a bytea, sent as it is).
  Result exec(const std::string& sql, const Params& params, std::span<const std::byte> bytes);
  // Results in PostgreSQL's binary format: a bytea column's value is its bytes (Result::get).
  Result exec_binary(const std::string& sql, const Params& params = {});
  // Several statements without parameters (a migration file); `name` names it in errors.
  void exec_script(const std::string& sql, const std::string& name);
  // COPY ... FROM STDIN (FORMAT BINARY) with `rows` already encoded (see CopyBuffer).
  void copy_in(const std::string& sql, std::span<const std::byte> data);

  // Waits up to `timeout` for NOTIFY messages on channels this connection LISTENs to and returns
  // their payloads (none: the time ran out). Throws pv::Error when the connection is lost (it
  // does not reconnect: a new connection must LISTEN again).
  std::vector<std::string> wait_for_notifications(std::chrono::milliseconds timeout);

  // Sends "SELECT 1" and waits up to `timeout` for its answer, however the server behaves (one
  // that accepts connections and never answers included). Throws UnavailableError when no answer
  // came in time (the connection is then closed: its next call reconnects) or it is lost.
  void ping(std::chrono::milliseconds timeout);

  // "patchvec@127.0.0.1:5432/patchvec": for messages.
  const std::string& name() const { return name_; }

 private:
  // PQexecParams with `params` as text, then `bytes` (if given) as one binary value; results in
  // text (0) or binary (1) format. Throws as fail() does.
  Result run(const std::string& sql, const Params& params, const std::span<const std::byte>* bytes,
             int result_format);
  [[noreturn]] void fail(const std::string& what, pg_result* result = nullptr);
  void reconnect_if_lost();
  pg_conn* connection_ = nullptr;
  std::string name_;
};

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(Connection& connection);
  ~Transaction();
  void commit();

 private:
  Connection& connection_;
  bool done_ = false;
};

// Up to `size` connections to one server, opened when first needed: what runs statements for
// many threads at once (a connection runs one at a time). Thread-safe.
class ConnectionPool {
 public:
  // Opens the first connection (throws pv::Error as Connection does) unless `lazy`: then the
  // first lease does. `session` as Connection's.
  ConnectionPool(std::string url, std::size_t size, std::string session = {}, bool lazy = false);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // A connection of one's own until the lease ends.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Connection& operator*() const { return *connection_; }
    Connection* operator->() const { return connection_.get(); }

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool& pool, std::unique_ptr<Connection> connection);
    ConnectionPool* pool_;
    std::unique_ptr<Connection> connection_;
  };

  // An idle connection, a new one while fewer than `size` are open, or else the first returned.
  Lease lease();

  // Runs `read(Connection&)` on a leased connection, and again on another when the one it ran on
  // turned out lost (UnavailableError: a restarted server; a standby gone, when prefer-standby
  // then finds the primary), up to `size` + 1 times. Only for statements that change nothing.
  template <class Read>
  std::invoke_result_t<Read&, Connection&> read(Read&& read) {
    for (std::size_t attempt = 0;; ++attempt) {
      const Lease db = lease();
      try {
        return read(*db);
      } catch (const UnavailableError&) {
        if (attempt >= size_) throw;
      }
    }
  }
  const std::string& name() const { return name_; }  // as Connection::name()

 private:
  void give_back(std::unique_ptr<Connection> connection);
  std::string url_;
  std::size_t size_;
  std::string session_;
  std::string name_;
  std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;
};

// Rows in PostgreSQL's binary COPY format.
class CopyBuffer {
 public:
  CopyBuffer();
  void begin_row(std::int16_t fields);
  void add_text(const std::string& value);
  void add_bool(bool value);
  void add_float(float value);
  void add_null();
  void add_vector(std::span<const float> values);  // pgvector's binary form
  std::span<const std::byte> finish();

 private:
  void put_u16(std::uint16_t v);
  void put_u32(std::uint32_t v);
  std::vector<std::byte> bytes_;
};

// '[1.5,2,...]': pgvector's text form, exact for float32 (9 significant digits).
std::string vector_text(std::span<const float> values);
std::vector<float> parse_vector(const std::string& text);

}  // namespace pv::pg
