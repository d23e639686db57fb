// PatchVec's version, as CMake's project() states it (the one place it is written).
#pragma once

namespace pv {

// "MAJOR.MINOR.PATCH". Thread-safe.
const char* version();

}  // namespace pv
