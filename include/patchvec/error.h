// The one exception type PatchVec throws across its public API.
#pragma once

#include <stdexcept>
#include <string>

namespace pv {

// A failure the user can act on. The message names the file, key or setting at fault,
// e.g. "weights file w.safetensors: key layer3.0.conv1.weight has shape [256, 512, 1, 1],
// expected [512, 1024, 1, 1]". Programs print it as is and exit non-zero.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace pv
