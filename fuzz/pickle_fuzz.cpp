// The strict unpickler alone: any bytes, read up to STOP, then the tree walked as the checkpoint
// reader and the anomalib import walk it (dict lookups, object attributes).
#include <cstdint>
#include <unordered_set>

#include <patchvec/error.h>

#include "fuzzing.h"
#include "nn/pickle.h"

namespace {

using pv::nn::pickle::Kind;
using pv::nn::pickle::Value;

// Each node once: values may be shared (the memo) or even contain themselves.
void walk(const Value* value, std::unordered_set<const Value*>& seen) {
  if (value == nullptr || !seen.insert(value).second) return;
  for (const Value* item : value->items) walk(item, seen);
  for (const Value* item : value->appended) walk(item, seen);
  for (const auto& [key, item] : value->entries) {
    walk(key, seen);
    walk(item, seen);
  }
  walk(value->state, seen);
  if (value->is(Kind::kTensor)) walk(value->tensor.storage, seen);
  if (value->is(Kind::kDict) || value->is(Kind::kObject)) {
    value->find("state_dict");
    value->attribute("_modules");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const pv::nn::pickle::Pickle pickle(pv::fuzzing::bytes_of(data, size), "fuzz: ");
    std::unordered_set<const Value*> seen;
    walk(&pickle.root(), seen);
  } catch (const pv::Error&) {
  }
  return 0;
}
