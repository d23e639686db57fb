// What a global a pickle names may be: the allowlist pickle.h describes, in one
// place, apart from the machine that reads the opcodes (pickle.cpp). Thread-safe (pure).
#pragma once

#include <optional>
#include <string_view>

#include "nn/pickle.h"

namespace pv::nn::pickle {

// How a global is treated: refused, kept as an inert placeholder, or one of the few callables
// the unpickler carries out itself (rebuilding tensors, ordered dicts, sets, bytes).
enum class Meaning {
  kRefused,
  kPlaceholder,
  kOrderedDict,
  kRebuildTensor,
  kRebuildTensorV2,
  kRebuildParameter,
  kRebuildParameterWithState,
  kSet,
  kFrozenSet,
  kCodecsEncode,
  kReconstructor,
  kStorageType,
};

// The meaning of `module`.`name`: kRefused for anything not allowed, including functions of
// allowed libraries whose names say they load, run or touch files.
Meaning meaning_of(std::string_view module, std::string_view name);

// The element type of "torch.FloatStorage" and its kin; nullopt for any other name.
std::optional<DType> storage_dtype(std::string_view qualified);

}  // namespace pv::nn::pickle
