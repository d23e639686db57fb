#include <patchvec/version.h>

namespace pv {

const char* version() {
  return PATCHVEC_VERSION;  // set from project(VERSION) in src/CMakeLists.txt
}

}  // namespace pv
