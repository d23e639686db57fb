// Numbers read strictly from JSON that came from outside (files, clients). nlohmann's
// get<int>() converts whatever number it holds, and a float beyond the integer's range (a
// 128-digit "offset" parses as 1e127) is undefined behaviour: these check first.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include <patchvec/error.h>

namespace pv {

// `value` as a T: stored as a whole number within T's range. Throws pv::Error starting with `what`.
template <typename T, typename Json>
T json_integer(const Json& value, const std::string& what) {
  static_assert(std::is_integral_v<T>);
  if (!value.is_number_integer()) throw Error(what + " must be a whole number");
  const bool fits = value.is_number_unsigned()
                        ? value.template get<std::uint64_t>() <=
                              static_cast<std::uint64_t>(std::numeric_limits<T>::max())
                        : value.template get<std::int64_t>() >=
                                  static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
                              (std::is_unsigned_v<T> ||
                               value.template get<std::int64_t>() <=
                                   static_cast<std::int64_t>(std::numeric_limits<T>::max()));
  if (!fits) throw Error(what + " is out of range: " + value.dump());
  return value.is_number_unsigned() ? static_cast<T>(value.template get<std::uint64_t>())
                                    : static_cast<T>(value.template get<std::int64_t>());
}

// `value` as a finite float or double within its range (1e300 does not fit a float).
template <typename T, typename Json>
T json_real(const Json& value, const std::string& what) {
  static_assert(std::is_floating_point_v<T>);
  if (!value.is_number()) throw Error(what + " must be a number");
  const double x = value.template get<double>();
  if (!(x >= -static_cast<double>(std::numeric_limits<T>::max()) &&
        x <= static_cast<double>(std::numeric_limits<T>::max()))) {
    throw Error(what + " is out of range: " + value.dump());
  }
  return static_cast<T>(x);
}

// An array of whole numbers, each as json_integer() reads it.
template <typename T, typename Json>
std::vector<T> json_integers(const Json& array, const std::string& what) {
  if (!array.is_array()) throw Error(what + " must be a list of whole numbers");
  std::vector<T> out;
  for (const auto& value : array) out.push_back(json_integer<T>(value, what));
  return out;
}

}  // namespace pv
