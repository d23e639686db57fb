// The operators' page (web/index.html, app.js, app.css), compiled into the binary.
#pragma once

#include <span>

namespace pv::service {

struct WebAsset {
  const char* path;  // "/", "/app.js", "/app.css"
  const char* content_type;
  const char* body;
};

std::span<const WebAsset> web_assets();

}  // namespace pv::service
