#include "service/requests.h"

#include <charconv>

#include <patchvec/image.h>

namespace pv::service {

std::int64_t parse_number(std::string_view text, std::int64_t first, std::int64_t last,
                          const std::string& what) {
  const HttpError refusal{400, what + " must be a whole number from " + std::to_string(first) +
                                   " to " + std::to_string(last)};
  if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != text.npos) {
    throw refusal;
  }
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < first || value > last) {
    throw refusal;
  }
  return value;
}

std::optional<std::int64_t> parse_id(std::string_view text) {
  if (text.empty() || text.find_first_not_of("0123456789") != text.npos) {
    throw HttpError{400, "an image id is a whole number"};
  }
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

void check_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    throw HttpError{400, "name must be 1 to " + std::to_string(kMaxNameBytes) + " bytes"};
  }
  // UTF-8, strictly (no overlong forms or surrogates), and no control characters.
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(name[i]); };
  for (std::size_t i = 0; i < name.size();) {
    const unsigned char c = byte(i);
    std::size_t length = 0;
    std::uint32_t code = 0;
    if (c < 0x80) {
      length = 1, code = c;
    } else if (c >= 0xc2 && c <= 0xdf) {
      length = 2, code = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3, code = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4, code = c & 0x07;
    } else {
      throw HttpError{400, "name is not valid UTF-8"};
    }
    if (i + length > name.size()) throw HttpError{400, "name is not valid UTF-8"};
    for (std::size_t k = 1; k < length; ++k) {
      if ((byte(i + k) & 0xc0) != 0x80) throw HttpError{400, "name is not valid UTF-8"};
      code = (code << 6) | (byte(i + k) & 0x3f);
    }
    const bool overlong = (length == 3 && code < 0x800) || (length == 4 && code < 0x10000);
    if (overlong || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      throw HttpError{400, "name is not valid UTF-8"};
    }
    if (code < 0x20 || (code >= 0x7f && code < 0xa0)) {
      throw HttpError{400, "name must not contain control characters"};
    }
    i += length;
  }
}

Upload upload_of(const httplib::Request& request) {
  if (request.is_multipart_form_data()) {
    const httplib::MultipartFormData* file = nullptr;
    for (const auto& [field, part] : request.files) {
      if (part.filename.empty()) continue;  // a plain form field
      if (file != nullptr)
        throw HttpError{400, "send one image per request (the form has several files)"};
      file = &part;
    }
    if (file == nullptr) {
      throw HttpError{
          400, "the form holds no file: send the image as a file field (curl -F image=@part.png)"};
    }
    if (file->content.empty()) throw HttpError{400, "the uploaded file is empty"};
    return {std::as_bytes(std::span(file->content.data(), file->content.size())), file->filename};
  }
  if (request.body.empty()) {
    throw HttpError{400, std::string("empty body: send the image bytes (") +
                             kSupportedImageFormats + ") as the body, or as a multipart form file"};
  }
  return {std::as_bytes(std::span(request.body.data(), request.body.size())), {}};
}

}  // namespace pv::service
