#include "service/requests.h"

#include <charconv>

#include <patchvec/image.h>
#include <patchvec/text.h>

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

std::optional<std::int64_t> parse_id(std::string_view text, std::string_view what) {
  if (text.empty() || text.find_first_not_of("0123456789") != text.npos) {
    throw HttpError{400, std::string(what) + " id is a whole number"};
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
  if (const std::string_view problem = text_problem(name); !problem.empty()) {
    throw HttpError{400, "name " + std::string(problem)};
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
