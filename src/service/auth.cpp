#include "service/auth.h"

#include <sstream>

#include <openssl/crypto.h>

#include <patchvec/error.h>
#include <patchvec/files.h>

#include "util/sha256.h"

namespace pv::service {
namespace {

std::string digest_of(std::string_view token) {
  return sha256_hex(std::as_bytes(std::span(token.data(), token.size())));
}

std::optional<Role> parse_role(const std::string& name) {
  if (name == "inspect") return Role::kInspect;
  if (name == "operator") return Role::kOperator;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::kInspect:
      return "inspect";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

TokenFile TokenFile::load(const std::filesystem::path& path) {
  // A regular file of at most 1 MiB (tens of thousands of tokens): a FIFO or /dev/zero is refused
  // before anything is read.
  constexpr std::int64_t kMaxBytes = 1 << 20;
  std::vector<std::byte> bytes;
  try {
    bytes = read_file(path, kMaxBytes);
  } catch (const Error& e) {
    throw Error(std::string("token file: ") + e.what() + " (--auth-tokens)");
  }
  std::istringstream in(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  TokenFile file;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = "token file " + path.string() + " line " + std::to_string(number);
    std::istringstream fields(line);
    std::string token, role, name, extra;
    if (!(fields >> token) || token.starts_with('#')) continue;
    if (!(fields >> role)) {
      throw Error(where + ": expected 'TOKEN ROLE [NAME]' (role inspect, operator or admin)");
    }
    fields >> name;
    if (fields >> extra)
      throw Error(where + ": expected 'TOKEN ROLE [NAME]' (NAME without spaces)");
    const auto parsed = parse_role(role);
    if (!parsed) {
      throw Error(where + ": unknown role '" + role + "' (inspect, operator or admin)");
    }
    if (token.size() < kMinTokenLength) {
      throw Error(where + ": the token is shorter than " + std::to_string(kMinTokenLength) +
                  " characters (openssl rand -hex 24 makes a good one)");
    }
    const std::string digest = digest_of(token);
    for (const Entry& entry : file.tokens_) {
      if (entry.sha256 == digest) throw Error(where + ": the same token appears twice");
    }
    file.tokens_.push_back({digest, *parsed, name.empty() ? role : name});
  }
  if (file.tokens_.empty()) throw Error("token file " + path.string() + " holds no token");
  return file;
}

std::optional<TokenFile::Caller> TokenFile::caller_of(std::string_view authorization) const {
  constexpr std::string_view kScheme = "Bearer ";
  if (!authorization.starts_with(kScheme)) return std::nullopt;
  const std::string digest = digest_of(authorization.substr(kScheme.size()));
  // Every entry is compared, whatever matched: the time taken says nothing about the tokens.
  std::optional<Caller> caller;
  for (const Entry& entry : tokens_) {
    if (CRYPTO_memcmp(entry.sha256.data(), digest.data(), digest.size()) == 0)
      caller = Caller{entry.role, entry.name};
  }
  return caller;
}

}  // namespace pv::service
