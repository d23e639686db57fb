#include "store/postgres.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <vector>

#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>

#include <patchvec/error.h>
#include <patchvec/store.h>

namespace pv::pg {
namespace {

std::string first_line(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (std::size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at)) {
    text.replace(at, 1, "; ");
  }
  return text;
}

// "user@host1:port1,host2:port2/db" from a URL or connection string, without connecting (the
// password left out); what it leaves out from the PG* variables, else "?".
std::string describe(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    if (error != nullptr) PQfreemem(error);
    return "?";
  }
  std::map<std::string, std::string> given;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && *o->val != '\0') given[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  const auto field = [&](const char* key, const char* variable) -> std::string {
    if (given.contains(key)) return given[key];
    const char* value = std::getenv(variable);
    return value != nullptr && *value != '\0' ? value : "?";
  };
  const auto split = [](const std::string& list) {
    std::vector<std::string> items;
    std::size_t start = 0;
    for (std::size_t comma; (comma = list.find(',', start)) != std::string::npos;
         start = comma + 1) {
      items.push_back(list.substr(start, comma - start));
    }
    items.push_back(list.substr(start));
    return items;
  };
  const std::vector<std::string> hosts = split(field("host", "PGHOST"));
  const std::vector<std::string> ports = split(field("port", "PGPORT"));
  std::string text = field("user", "PGUSER") + "@";
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    text += (i ? "," : "") + hosts[i] + ":" + ports[std::min(i, ports.size() - 1)];
  }
  return text + "/" + field("dbname", "PGDATABASE");
}

}  // namespace

Result::Result(pg_result* result) : result_(result, PQclear) {}
int Result::rows() const {
  return PQntuples(result_.get());
}
std::optional<std::string> Result::get(int row, int column) const {
  if (PQgetisnull(result_.get(), row, column)) return std::nullopt;
  return std::string(PQgetvalue(result_.get(), row, column),
                     static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
}
std::string Result::text(int row, int column) const {
  return get(row, column).value_or("");
}

Connection::Connection(const std::string& url, const std::string& session) {
  // Keywords after "dbname" override what the URL says; a server that does not answer should not
  // hang the command.
  const char* timeout = std::getenv("PGCONNECT_TIMEOUT");
  std::vector<const char*> keys = {"dbname", "connect_timeout", "application_name"};
  std::vector<const char*> values = {url.c_str(), timeout ? timeout : "5", "patchvec"};
  if (!session.empty()) {
    keys.push_back("target_session_attrs");
    values.push_back(session.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  connection_ = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  const char* user = PQuser(connection_);
  const char* host = PQhost(connection_);
  const char* port = PQport(connection_);
  const char* db = PQdb(connection_);
  name_ = std::string(user ? user : "?") + "@" + (host ? host : "?") + ":" + (port ? port : "?") +
          "/" + (db ? db : "?");
  if (PQstatus(connection_) != CONNECTION_OK) {
    const std::string message = first_line(PQerrorMessage(connection_));
    PQfinish(connection_);
    connection_ = nullptr;
    throw UnavailableError("cannot connect to PostgreSQL " + name_ +
                           (session.empty() ? "" : " (" + session + ")") + " (--db): " + message);
  }
  PQsetNoticeProcessor(
      connection_, [](void*, const char*) {}, nullptr);  // no NOTICE chatter
}

Connection::~Connection() {
  if (connection_ != nullptr) PQfinish(connection_);
}

ConnectionPool::ConnectionPool(std::string url, std::size_t size, std::string session, bool lazy)
    : url_(std::move(url)), size_(std::max<std::size_t>(size, 1)), session_(std::move(session)) {
  if (lazy) {
    name_ = describe(url_);
    return;
  }
  auto first = std::make_unique<Connection>(url_, session_);
  name_ = first->name();
  idle_.push_back(std::move(first));
  open_ = 1;
}

ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Lease ConnectionPool::lease() {
  std::unique_lock lock(mutex_);
  returned_.wait(lock, [&] { return !idle_.empty() || open_ < size_; });
  if (!idle_.empty()) {
    std::unique_ptr<Connection> connection = std::move(idle_.back());
    idle_.pop_back();
    return Lease(*this, std::move(connection));
  }
  ++open_;
  lock.unlock();
  try {
    return Lease(*this, std::make_unique<Connection>(url_, session_));
  } catch (...) {
    lock.lock();
    --open_;
    returned_.notify_one();
    throw;
  }
}

void ConnectionPool::give_back(std::unique_ptr<Connection> connection) {
  {
    const std::lock_guard lock(mutex_);
    idle_.push_back(std::move(connection));
  }
  returned_.notify_one();
}

ConnectionPool::Lease::Lease(ConnectionPool& pool, std::unique_ptr<Connection> connection)
    : pool_(&pool), connection_(std::move(connection)) {}

ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), connection_(std::move(other.connection_)) {}

ConnectionPool::Lease::~Lease() {
  if (connection_) pool_->give_back(std::move(connection_));
}

void Connection::fail(const std::string& what, pg_result* result) {
  std::string message = first_line(result ? PQresultErrorMessage(result) : nullptr);
  if (message.empty()) message = first_line(PQerrorMessage(connection_));
  // Lost connections, servers shutting down or in recovery, a standby that cannot write: the
  // server is unavailable for this now, not the statement wrong.
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state ? state : "";
  const bool unavailable = PQstatus(connection_) != CONNECTION_OK || sqlstate.starts_with("08") ||
                           sqlstate.starts_with("57P") || sqlstate == "25006";
  if (result) PQclear(result);
  const std::string text = "PostgreSQL " + name_ + ": " + what + ": " + message;
  if (unavailable) throw UnavailableError(text);
  throw Error(text);
}

void Connection::reconnect_if_lost() {
  // A server restart or an administrator's pg_terminate_backend: the call that saw it failed;
  // the next one reconnects instead of failing forever.
  if (PQstatus(connection_) == CONNECTION_OK) return;
  PQreset(connection_);
  if (PQstatus(connection_) != CONNECTION_OK) fail("reconnecting");
}

void Connection::ping(std::chrono::milliseconds timeout) {
  reconnect_if_lost();
  const auto until = std::chrono::steady_clock::now() + timeout;
  if (PQsendQuery(connection_, "SELECT 1") == 0) fail("ping");
  for (;;) {
    if (PQconsumeInput(connection_) == 0) fail("ping");
    if (PQisBusy(connection_) == 0) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      // The query is still out: the connection cannot be used again. Closing its socket makes
      // libpq see it lost, so the next call reconnects.
      ::shutdown(PQsocket(connection_), SHUT_RDWR);
      PQconsumeInput(connection_);
      throw UnavailableError("PostgreSQL " + name_ + ": no answer within " +
                             std::to_string(timeout.count()) + " ms");
    }
    pollfd p{.fd = PQsocket(connection_), .events = POLLIN, .revents = 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
  while (pg_result* result = PQgetResult(connection_)) {
    if (PQresultStatus(result) != PGRES_TUPLES_OK) fail("ping", result);
    PQclear(result);
  }
}

Result Connection::run(const std::string& sql, const Params& params,
                       const std::span<const std::byte>* bytes, int result_format) {
  reconnect_if_lost();
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  for (const auto& p : params) {
    values.push_back(p ? p->c_str() : nullptr);
    lengths.push_back(0);  // text values: libpq reads up to their terminating zero
    formats.push_back(0);
  }
  if (bytes != nullptr) {
    if (bytes->size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
      throw Error("PostgreSQL " + name_ + ": a value of " + std::to_string(bytes->size()) +
                  " bytes is more than one parameter can carry");
    }
    values.push_back(reinterpret_cast<const char*>(bytes->data()));
    lengths.push_back(static_cast<int>(bytes->size()));
    formats.push_back(1);
  }
  pg_result* result =
      PQexecParams(connection_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                   values.data(), lengths.data(), formats.data(), result_format);
  const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    fail(sql.substr(0, sql.find_first_of("(\n")), result);
  }
  return Result(result);
}

Result Connection::exec(const std::string& sql, const Params& params) {
  return run(sql, params, nullptr, 0);
}

Result Connection::exec(const std::string& sql, const Params& params,
                        std::span<const std::byte> bytes) {
  return run(sql, params, &bytes, 0);
}

Result Connection::exec_binary(const std::string& sql, const Params& params) {
  return run(sql, params, nullptr, 1);
}

std::vector<std::string> Connection::wait_for_notifications(std::chrono::milliseconds timeout) {
  std::vector<std::string> payloads;
  const auto take = [&] {
    if (PQconsumeInput(connection_) != 1) fail("waiting for notifications");
    while (PGnotify* notify = PQnotifies(connection_)) {
      payloads.emplace_back(notify->extra != nullptr ? notify->extra : "");
      PQfreemem(notify);
    }
  };
  if (PQstatus(connection_) != CONNECTION_OK) fail("waiting for notifications");
  take();  // some may have come with the last result
  if (!payloads.empty()) return payloads;
  pollfd fd{.fd = PQsocket(connection_), .events = POLLIN, .revents = 0};
  if (fd.fd < 0) fail("waiting for notifications");
  const int ready = ::poll(&fd, 1, static_cast<int>(timeout.count()));
  if (ready < 0 && errno != EINTR) fail("waiting for notifications");
  if (ready > 0) take();
  return payloads;
}

void Connection::exec_script(const std::string& sql, const std::string& name) {
  reconnect_if_lost();
  pg_result* result = PQexec(connection_, sql.c_str());
  const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) fail(name, result);
  PQclear(result);
}

void Connection::copy_in(const std::string& sql, std::span<const std::byte> data) {
  reconnect_if_lost();
  pg_result* start = PQexec(connection_, sql.c_str());
  if (!start || PQresultStatus(start) != PGRES_COPY_IN) fail("COPY", start);
  PQclear(start);
  constexpr std::size_t kChunk = 1 << 20;
  for (std::size_t offset = 0; offset < data.size(); offset += kChunk) {
    const std::size_t n = std::min(kChunk, data.size() - offset);
    if (PQputCopyData(connection_, reinterpret_cast<const char*>(data.data() + offset),
                      static_cast<int>(n)) != 1) {
      fail("COPY (sending rows)");
    }
  }
  if (PQputCopyEnd(connection_, nullptr) != 1) fail("COPY (ending)");
  pg_result* end = PQgetResult(connection_);
  if (!end || PQresultStatus(end) != PGRES_COMMAND_OK) fail("COPY", end);
  PQclear(end);
  while (pg_result* extra = PQgetResult(connection_)) PQclear(extra);
}

Transaction::Transaction(Connection& connection) : connection_(connection) {
  connection_.exec("BEGIN");
}
Transaction::~Transaction() {
  if (!done_) {
    try {
      connection_.exec("ROLLBACK");
    } catch (...) {  // the connection is gone: the server rolled back already
    }
  }
}
void Transaction::commit() {
  connection_.exec("COMMIT");
  done_ = true;
}

CopyBuffer::CopyBuffer() {
  static const char kSignature[] = "PGCOPY\n\377\r\n";  // 11 bytes with its terminating zero
  const auto* s = reinterpret_cast<const std::byte*>(kSignature);
  bytes_.assign(s, s + 11);
  put_u32(0);  // flags
  put_u32(0);  // header extension length
}
void CopyBuffer::put_u16(std::uint16_t v) {
  bytes_.push_back(std::byte(v >> 8));
  bytes_.push_back(std::byte(v & 0xff));
}
void CopyBuffer::put_u32(std::uint32_t v) {
  put_u16(static_cast<std::uint16_t>(v >> 16));
  put_u16(static_cast<std::uint16_t>(v & 0xffff));
}
void CopyBuffer::begin_row(std::int16_t fields) {
  put_u16(static_cast<std::uint16_t>(fields));
}
void CopyBuffer::add_text(const std::string& value) {
  put_u32(static_cast<std::uint32_t>(value.size()));
  const auto* p = reinterpret_cast<const std::byte*>(value.data());
  bytes_.insert(bytes_.end(), p, p + value.size());
}
void CopyBuffer::add_bool(bool value) {
  put_u32(1);
  bytes_.push_back(std::byte(value ? 1 : 0));
}
void CopyBuffer::add_float(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  put_u32(4);
  put_u32(bits);
}
void CopyBuffer::add_null() {
  put_u32(0xffffffffu);
}
void CopyBuffer::add_vector(std::span<const float> values) {
  put_u32(static_cast<std::uint32_t>(4 + 4 * values.size()));
  put_u16(static_cast<std::uint16_t>(values.size()));
  put_u16(0);
  for (const float v : values) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, 4);
    put_u32(bits);
  }
}
std::span<const std::byte> CopyBuffer::finish() {
  put_u16(0xffff);
  return bytes_;
}

std::string vector_text(std::span<const float> values) {
  std::string text = "[";
  char number[32];
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::snprintf(number, sizeof number, i ? ",%.9g" : "%.9g", double(values[i]));
    text += number;
  }
  return text + "]";
}

std::vector<float> parse_vector(const std::string& text) {
  std::vector<float> values;
  const char* p = text.c_str();
  if (*p == '[') ++p;
  while (*p && *p != ']') {
    char* end = nullptr;
    values.push_back(std::strtof(p, &end));
    if (end == p) break;
    p = *end == ',' ? end + 1 : end;
  }
  return values;
}

}  // namespace pv::pg
