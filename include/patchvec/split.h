// Which part of a collection an image belongs to: one enum and one spelling for datasets, stored
// images, the CLI and the HTTP API.
#pragma once

#include <string>
#include <string_view>

#include <patchvec/error.h>

namespace pv {

// kTrain: defect-free images a model was fitted on; kTest: a dataset's labelled test images;
// kAdded: images a user added one at a time (add-anomaly, an operator's decision, update).
enum class Split { kTrain, kTest, kAdded };

// "train", "test", "added": the one string form.
constexpr const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kTest:
      return "test";
    case Split::kAdded:
      break;
  }
  return "added";
}

// The split `name` spells; throws pv::Error naming `setting` for anything else.
inline Split parse_split(std::string_view name, std::string_view setting) {
  for (const Split s : {Split::kTrain, Split::kTest, Split::kAdded}) {
    if (name == split_name(s)) return s;
  }
  throw Error(std::string(setting) + " is '" + std::string(name) +
              "': expected train, test or added");
}

}  // namespace pv
