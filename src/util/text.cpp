#include <algorithm>
#include <cstdint>

#include <patchvec/text.h>

namespace pv {
namespace {

enum class Unit { kCharacter, kControl, kInvalid };

// The UTF-8 character at text[at]: its kind and its length in bytes (1 for an invalid byte).
Unit next_unit(std::string_view text, std::size_t at, std::size_t& length) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char c = byte(at);
  length = 1;
  std::uint32_t code = 0;
  if (c < 0x80) {
    return c < 0x20 || c == 0x7f ? Unit::kControl : Unit::kCharacter;
  } else if (c >= 0xc2 && c <= 0xdf) {
    length = 2, code = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    length = 3, code = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    length = 4, code = c & 0x07;
  } else {
    return Unit::kInvalid;
  }
  if (at + length > text.size()) return length = 1, Unit::kInvalid;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(at + k) & 0xc0) != 0x80) return length = 1, Unit::kInvalid;
    code = (code << 6) | (byte(at + k) & 0x3f);
  }
  const bool overlong = (length == 3 && code < 0x800) || (length == 4 && code < 0x10000);
  if (overlong || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
    return length = 1, Unit::kInvalid;
  }
  return code >= 0x80 && code < 0xa0 ? Unit::kControl : Unit::kCharacter;
}

}  // namespace

std::string_view text_problem(std::string_view text) {
  bool control = false;
  for (std::size_t i = 0, length = 0; i < text.size(); i += length) {
    const Unit unit = next_unit(text, i, length);
    if (unit == Unit::kInvalid) return "is not valid UTF-8";
    control |= unit == Unit::kControl;
  }
  return control ? "contains control characters" : "";
}

std::string printable(std::string_view text, std::size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 3);
  for (std::size_t i = 0, length = 0; i < text.size(); i += length) {
    const Unit unit = next_unit(text, i, length);
    std::string piece;
    if (unit == Unit::kCharacter) {
      piece.assign(text.substr(i, length));
    } else {
      for (std::size_t k = 0; k < length; ++k) {
        const auto c = static_cast<unsigned char>(text[i + k]);
        piece += "\\x";
        piece += kHex[c >> 4];
        piece += kHex[c & 15];
      }
    }
    if (out.size() + piece.size() > max_bytes) return out + "...";
    out += piece;
  }
  return out;
}

}  // namespace pv
