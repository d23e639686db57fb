// Bearer tokens with roles for the service (serve --auth-tokens FILE).
//
// The file holds one token per line with its role and, optionally, who holds it: "TOKEN ROLE
// [NAME]" (the name is what resolved reports record); blank lines and lines starting with # are
// ignored. Roles are ordered: inspect < operator < admin, each allowed what the ones
// before it are:
//   inspect    inspect images, read categories, reports, thumbnails and metrics
//   operator   also resolve reports (the operators' decisions)
//   admin      also publish models
// Tokens are compared by their SHA-256 in constant time, never logged, never echoed.
// Thread-safety: a loaded TokenFile is read-only and may be shared.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pv::service {

enum class Role { kInspect = 1, kOperator = 2, kAdmin = 3 };

const char* role_name(Role role);

inline constexpr std::size_t kMinTokenLength = 16;

class TokenFile {
 public:
  // Throws pv::Error naming the file and line: an unknown role, a token shorter than
  // kMinTokenLength characters, a duplicate, or no token at all.
  static TokenFile load(const std::filesystem::path& path);

  struct Caller {
    Role role;
    std::string name;  // the token's NAME, else its role's name
  };
  // Who sends an "Authorization: Bearer <token>" header value; nullopt if the header is missing,
  // malformed or the token unknown.
  std::optional<Caller> caller_of(std::string_view authorization) const;

  std::size_t size() const { return tokens_.size(); }

 private:
  struct Entry {
    std::string sha256;  // of the token, hex
    Role role;
    std::string name;
  };
  std::vector<Entry> tokens_;
};

}  // namespace pv::service
