// A strict reader of Python pickles, for PyTorch checkpoints. It never runs anything.
//
// A pickle is a program for a stack machine whose GLOBAL/REDUCE opcodes call arbitrary Python
// functions (`os.system` among them); that is why `torch.load` of a stranger's file is unsafe.
// This reader only builds an inert tree of values. A global is looked up in a fixed table:
//   - the few that a state_dict needs get their meaning (collections.OrderedDict is a dict,
//     torch._utils._rebuild_tensor_v2 a tensor view of a storage, _rebuild_parameter the tensor
//     inside a Parameter, builtins.set a set, _codecs.encode bytes, copyreg._reconstructor an
//     object of the class it names);
//   - classes and functions of the libraries whose objects ride along in training checkpoints
//     (torch, torchvision, timm, anomalib, lightning, torchmetrics, omegaconf, jsonargparse,
//     numpy, pathlib, enum values, argparse.Namespace) become inert placeholders: an Object that
//     records the class name, its arguments and its state, and is never called;
//   - anything else (os.system, builtins.eval, subprocess.Popen, ...) is refused with an error
//     naming it, before anything further is read.
// Protocols 0 to 5 are read, without out-of-band buffers or the extension registry. Every length
// and index is checked against the input; memory is bounded by a small multiple of its size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "nn/safetensors.h"

namespace pv::nn::pickle {

enum class Kind {
  kNone,
  kBool,
  kInt,
  kBigInt,  // an integer beyond 64 bits (the legacy format's magic number): its bytes in `text`
  kFloat,
  kString,
  kBytes,
  kTuple,
  kList,
  kSet,
  kDict,
  kGlobal,   // a class or function, named in `text` ("torch.FloatStorage")
  kObject,   // an inert instance or call result of the global named in `text`
  kStorage,  // a PyTorch storage named by a persistent id
  kTensor,   // a strided view of a storage
};

struct Value;

// A PyTorch storage as a checkpoint names it: the archive record `key`, `numel` elements of
// `dtype` (torch.FloatStorage -> F32, ...).
struct StorageRef {
  std::string key;
  DType dtype = DType::kF32;
  std::int64_t numel = 0;
};

// torch.Tensor as torch._utils._rebuild_tensor_v2 describes it. Nothing here is checked against
// the storage yet (see torch_checkpoint.h).
struct TensorRef {
  const Value* storage = nullptr;  // a kStorage value
  std::int64_t offset = 0;         // in elements
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> stride;  // in elements
};

// One node of the tree. Nodes belong to the Pickle that read them and may be shared (the memo).
struct Value {
  Kind kind = Kind::kNone;
  bool boolean = false;
  std::int64_t integer = 0;
  double real = 0;
  std::string text;                    // kString/kBytes/kBigInt; the class name of kGlobal/kObject
  std::vector<const Value*> items;     // kTuple/kList/kSet; a kObject's arguments
  std::vector<const Value*> appended;  // APPEND(S) on a kObject
  std::vector<std::pair<const Value*, const Value*>> entries;  // kDict, or SETITEM on a kObject
  const Value* state = nullptr;  // BUILD's argument (a kObject's __dict__ or __setstate__)
  StorageRef storage;            // kStorage
  TensorRef tensor;              // kTensor

  bool is(Kind k) const { return kind == k; }
  // For kDict (and a kObject's entries): the value under the string key, or nullptr.
  const Value* find(std::string_view key) const;
  // For a kObject: the attribute `name` from its BUILD state when that state is a dict (the
  // usual __dict__), or nullptr.
  const Value* attribute(std::string_view name) const;
};

// Kind names for messages: "dict", "tensor", ...
std::string_view kind_name(Kind kind);

// One pickle read from the start of some bytes. Not copyable (values point into it); movable.
class Pickle {
 public:
  // Reads up to and including the STOP opcode. `where` starts every error message ("weights
  // file w.pth: "). Throws pv::Error for a refused global, an unsupported or malformed opcode, or
  // input that ends early.
  Pickle(std::span<const std::byte> bytes, const std::string& where);
  Pickle(Pickle&&) noexcept = default;
  Pickle& operator=(Pickle&&) noexcept = default;
  Pickle(const Pickle&) = delete;
  Pickle& operator=(const Pickle&) = delete;

  const Value& root() const { return *root_; }
  std::size_t consumed() const { return consumed_; }          // bytes read, STOP included
  const std::deque<Value>& values() const { return arena_; }  // every node read, in order

 private:
  std::deque<Value> arena_;  // every node; a deque keeps their addresses stable
  const Value* root_ = nullptr;
  std::size_t consumed_ = 0;
};

}  // namespace pv::nn::pickle
