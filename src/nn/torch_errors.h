// libtorch reports errors as c10::Error, whose what() carries a C++ backtrace. At the library's
// boundary they become pv::Error with libtorch's one-line message and our context.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <c10/util/Exception.h>

#include <patchvec/error.h>

namespace pv::nn {

template <typename Function>
decltype(auto) torch_errors_as_pv(std::string_view context, Function&& function) {
  try {
    return std::forward<Function>(function)();
  } catch (const c10::Error& e) {
    std::string message = e.what_without_backtrace();
    message = message.substr(0, message.find('\n'));
    throw Error(std::string(context) + message);
  }
}

}  // namespace pv::nn
