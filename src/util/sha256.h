// SHA-256 (OpenSSL), as lowercase hex: identifies weights files and checks model files.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace pv {

// Incremental hashing. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::span<const std::byte> bytes);
  std::string hex();  // finishes the hash; call once

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string sha256_hex(std::span<const std::byte> bytes);
std::string sha256_file_hex(const std::filesystem::path& path);  // throws pv::Error naming the file

// HMAC-SHA256 of `message` with `key` (RFC 2104), as lowercase hex: webhook signatures.
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

}  // namespace pv
