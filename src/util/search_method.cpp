#include <string>

#include <patchvec/error.h>
#include <patchvec/search_method.h>

namespace pv {

const char* search_method_name(SearchMethod method) {
  switch (method) {
    case SearchMethod::kExact:
      return "exact";
    case SearchMethod::kShortlist:
      return "shortlist";
    case SearchMethod::kAuto:
      break;
  }
  return "auto";
}

SearchMethod parse_search_method(std::string_view name, std::string_view setting) {
  for (const SearchMethod m :
       {SearchMethod::kAuto, SearchMethod::kExact, SearchMethod::kShortlist}) {
    if (name == search_method_name(m)) return m;
  }
  throw Error(std::string(setting) + ": unknown search '" + std::string(name) +
              "' (exact, shortlist or auto)");
}

SearchMethod resolve_search_method(SearchMethod method, std::int64_t bank_size) {
  if (method != SearchMethod::kAuto) return method;
  return bank_size >= kShortlistMinSize ? SearchMethod::kShortlist : SearchMethod::kExact;
}

}  // namespace pv
