// What the service reads from a request, read strictly: numbers, names and uploaded images.
// Every refusal is an HttpError with the status and a message for the client.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <httplib.h>

namespace pv::service {

// A refusal of the request: the status and a message the client may see.
struct HttpError {
  int status;
  std::string message;
};

// A whole decimal number from `first` to `last`: digits only, no sign, spaces or fractions.
// Throws HttpError 400 "`what` must be a whole number from first to last".
std::int64_t parse_number(std::string_view text, std::int64_t first, std::int64_t last,
                          const std::string& what);

// The id of a stored `what` ("an image", "a report"): digits only; nullopt for a number no id can
// have (too large). Throws HttpError 400 "`what` id is a whole number" for anything else.
std::optional<std::int64_t> parse_id(std::string_view text, std::string_view what);

inline constexpr std::size_t kMaxNameBytes = 255;

// What a report records as the image's name: at most kMaxNameBytes bytes of clean text
// (pv::text_problem()). Throws HttpError 400.
void check_name(std::string_view name);

// The image bytes of an upload and the file name it came with (may be empty): the raw body
// whatever its declared type, or the one file of a multipart/form-data body.
// Throws HttpError 400 (empty body, several files, a form without a file).
struct Upload {
  std::span<const std::byte> bytes;
  std::string filename;
};
Upload upload_of(const httplib::Request& request);

}  // namespace pv::service
