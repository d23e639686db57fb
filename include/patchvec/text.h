// Text that came from outside (names, defect types, notes, request paths): checked before it is
// stored, and made printable before it reaches a terminal, a log or an error message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pv {

// Why `text` is not clean text, or empty when it is: UTF-8 (strictly: no overlong forms,
// surrogates or code points past U+10FFFF) without control characters (C0, DEL, C1).
// "is not valid UTF-8" or "contains control characters". Thread-safe.
std::string_view text_problem(std::string_view text);

// `text` as one printable line: control characters and bytes that are not UTF-8 written as \xNN,
// and cut to `max_bytes` (whole characters) with "..." when longer. For repeating what a client
// sent in a message, a log line or a terminal table, so that no input can start a line of its
// own or send an escape sequence. Thread-safe.
std::string printable(std::string_view text, std::size_t max_bytes = std::string::npos);

}  // namespace pv
