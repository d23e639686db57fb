#include "nn/pickle_globals.h"

#include <array>
#include <string>

namespace pv::nn::pickle {
namespace {

struct StorageType {
  std::string_view name;
  DType dtype;
};
constexpr std::array<StorageType, 10> kStorageTypes = {{{"FloatStorage", DType::kF32},
                                                        {"HalfStorage", DType::kF16},
                                                        {"BFloat16Storage", DType::kBF16},
                                                        {"DoubleStorage", DType::kF64},
                                                        {"LongStorage", DType::kI64},
                                                        {"IntStorage", DType::kI32},
                                                        {"ShortStorage", DType::kI16},
                                                        {"CharStorage", DType::kI8},
                                                        {"ByteStorage", DType::kU8},
                                                        {"BoolStorage", DType::kBool}}};

}  // namespace

std::optional<DType> storage_dtype(std::string_view qualified) {
  if (!qualified.starts_with("torch.")) return std::nullopt;
  const auto name = qualified.substr(6);
  for (const auto& type : kStorageTypes) {
    if (type.name == name) return type.dtype;
  }
  return std::nullopt;
}

namespace {

// Modules whose classes and functions may appear in training checkpoints as inert objects.
constexpr std::array<std::string_view, 16> kPlaceholderModules = {"torch",
                                                                  "torchvision",
                                                                  "timm",
                                                                  "anomalib",
                                                                  "lightning",
                                                                  "pytorch_lightning",
                                                                  "lightning_fabric",
                                                                  "lightning_utilities",
                                                                  "torchmetrics",
                                                                  "omegaconf",
                                                                  "jsonargparse",
                                                                  "numpy",
                                                                  "pathlib",
                                                                  "datetime",
                                                                  "enum",
                                                                  "collections"};

// Builtins that only construct plain values; eval, exec, getattr, __import__, open, ... are not
// here.
constexpr std::array<std::string_view, 12> kPlainBuiltins = {
    "object", "slice", "complex", "bytearray", "list", "dict",
    "tuple",  "int",   "float",   "str",       "bool", "range"};

}  // namespace

Meaning meaning_of(std::string_view module, std::string_view name) {
  const std::string qualified = std::string(module) + "." + std::string(name);
  if (qualified == "collections.OrderedDict") return Meaning::kOrderedDict;
  if (qualified == "torch._utils._rebuild_tensor") return Meaning::kRebuildTensor;
  if (qualified == "torch._utils._rebuild_tensor_v2") return Meaning::kRebuildTensorV2;
  if (qualified == "torch._utils._rebuild_parameter") return Meaning::kRebuildParameter;
  if (qualified == "torch._utils._rebuild_parameter_with_state") {
    return Meaning::kRebuildParameterWithState;
  }
  if (storage_dtype(qualified)) return Meaning::kStorageType;
  if (module == "builtins" || module == "__builtin__") {
    if (name == "set") return Meaning::kSet;
    if (name == "frozenset") return Meaning::kFrozenSet;
    for (const auto plain : kPlainBuiltins) {
      if (plain == name) return Meaning::kPlaceholder;
    }
    return Meaning::kRefused;
  }
  if (qualified == "_codecs.encode") return Meaning::kCodecsEncode;
  if (qualified == "copyreg._reconstructor" || qualified == "copy_reg._reconstructor") {
    return Meaning::kReconstructor;
  }
  if (qualified == "argparse.Namespace") return Meaning::kPlaceholder;
  // Within the libraries, functions (lower-case names) that load, run or touch files are still
  // refused, so that the message names them plainly.
  const bool function = !name.empty() && name[0] >= 'a' && name[0] <= 'z';
  for (const std::string_view bad :
       {"system", "popen", "exec", "eval", "spawn", "load", "open", "import", "getattr", "setattr",
        "compile", "remove", "unlink", "rmtree", "call"}) {
    if (function && name.find(bad) != std::string_view::npos) {
      return Meaning::kRefused;
    }
  }
  const std::string_view top = module.substr(0, module.find('.'));
  for (const auto allowed : kPlaceholderModules) {
    if (top == allowed) return Meaning::kPlaceholder;
  }
  return Meaning::kRefused;
}

}  // namespace pv::nn::pickle
