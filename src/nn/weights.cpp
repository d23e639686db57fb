#include "nn/weights.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include <torch/utils.h>

#include <patchvec/error.h>

#include "nn/safetensors.h"
#include "util/sha256.h"

namespace pv::nn {
namespace {

bool is_optional(const std::string& name) {
  return name.ends_with("num_batches_tracked");
}

std::map<std::string, torch::Tensor> named_state(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& item : module.named_parameters()) state.emplace(item.key(), item.value());
  for (const auto& item : module.named_buffers()) state.emplace(item.key(), item.value());
  return state;
}

std::optional<torch::ScalarType> float_type(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return torch::kFloat32;
    case DType::kF16:
      return torch::kFloat16;
    case DType::kBF16:
      return torch::kBFloat16;
    case DType::kF64:
      return torch::kFloat64;
    default:
      return std::nullopt;
  }
}

torch::Tensor to_float_tensor(const TensorEntry& entry, torch::ScalarType type) {
  // from_blob does not copy; the mapping outlives this call and to() makes the copy.
  const auto view = torch::from_blob(const_cast<std::byte*>(entry.bytes.data()), entry.shape,
                                     torch::TensorOptions().dtype(type));
  return view.to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true);
}

std::string problem_list(const std::vector<std::string>& problems) {
  constexpr std::size_t kShown = 12;
  std::string text;
  for (std::size_t i = 0; i < problems.size() && i < kShown; ++i) text += "\n  " + problems[i];
  if (problems.size() > kShown) {
    text += "\n  ... and " + std::to_string(problems.size() - kShown) + " more";
  }
  return text;
}

// What loading a file into a module would do: the copies to make, or the problems preventing it.
struct LoadPlan {
  std::vector<std::string> problems;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (destination, source)
  std::size_t ignored = 0;
  std::string prefix;
};

// The prefix under which the file holds the module's tensors: "" when their names are there as
// they are, else the one prefix P for which most of them exist as P + name.
std::string find_prefix(const std::map<std::string, torch::Tensor>& targets,
                        const std::map<std::string, TensorEntry>& tensors) {
  const auto found_under = [&](const std::string& prefix) {
    std::size_t found = 0;
    for (const auto& [name, tensor] : targets) found += tensors.contains(prefix + name) ? 1 : 0;
    return found;
  };
  std::string best;
  std::size_t best_found = found_under("");
  if (best_found == targets.size() || targets.empty()) return best;
  // Candidates end just before the longest name of the module that a key ends with
  // ("model.backbone." + "layer1.0.conv1.weight").
  std::set<std::string> candidates;
  for (const auto& [key, entry] : tensors) {
    std::size_t longest = 0;
    for (const auto& [name, tensor] : targets) {
      if (name.size() > longest && key.size() > name.size() && key.ends_with(name) &&
          key[key.size() - name.size() - 1] == '.') {
        longest = name.size();
      }
    }
    if (longest > 0) candidates.insert(key.substr(0, key.size() - longest));
    if (candidates.size() > 256) break;
  }
  for (const auto& candidate : candidates) {
    const std::size_t found = found_under(candidate);
    if (found > best_found) {
      best = candidate;
      best_found = found;
    }
  }
  return best;
}

LoadPlan plan_load(const torch::nn::Module& module, const TensorFile& file,
                   const std::vector<std::string>& ignored_prefixes, bool convert) {
  const auto targets = named_state(module);
  const auto is_ignored = [&](const std::string& key) {
    return std::any_of(ignored_prefixes.begin(), ignored_prefixes.end(),
                       [&](const std::string& prefix) { return key.starts_with(prefix); });
  };
  LoadPlan plan;
  plan.prefix = find_prefix(targets, file.tensors());
  const auto& tensors = file.tensors();
  for (const auto& [name, destination] : targets) {
    const auto found = tensors.find(plan.prefix + name);
    if (found == tensors.end()) {
      if (!is_optional(name)) {
        plan.problems.push_back("missing key " + plan.prefix + name + " (expected shape " +
                                shape_string(destination.sizes().vec()) + ")");
      }
      continue;
    }
    if (is_optional(name)) continue;  // a counter, not a weight
    const TensorEntry& entry = found->second;
    const auto type = float_type(entry.dtype);
    if (!type) {
      plan.problems.push_back("key " + found->first + " has dtype " +
                              std::string(dtype_name(entry.dtype)) +
                              ", expected F32, F16, BF16 or F64");
    } else if (entry.shape != destination.sizes().vec()) {
      plan.problems.push_back("key " + found->first + " has shape " + shape_string(entry.shape) +
                              ", expected " + shape_string(destination.sizes().vec()));
    } else if (convert) {
      plan.copies.emplace_back(destination, to_float_tensor(entry, *type));
    }
  }
  for (const auto& [key, entry] : tensors) {
    if (!key.starts_with(plan.prefix)) {
      ++plan.ignored;  // another part of a training checkpoint
      continue;
    }
    const std::string name = key.substr(plan.prefix.size());
    if (targets.contains(name)) continue;
    if (is_ignored(name)) {
      ++plan.ignored;
    } else {
      plan.problems.push_back("unexpected key " + key + " " + shape_string(entry.shape));
    }
  }
  return plan;
}

}  // namespace

WeightsReport load_weights(torch::nn::Module& module, const TensorFile& file,
                           const std::vector<std::string>& ignored_prefixes) {
  LoadPlan plan = plan_load(module, file, ignored_prefixes, /*convert=*/true);
  if (!plan.problems.empty()) {
    throw Error("weights file " + file.path().string() + " (" + std::string(file.format()) +
                ") does not fit backbone (" + std::to_string(plan.problems.size()) +
                " problems):" + problem_list(plan.problems));
  }
  const torch::NoGradGuard no_grad;
  for (auto& [destination, source] : plan.copies) destination.copy_(source);
  return {.loaded = plan.copies.size(), .ignored = plan.ignored, .prefix = plan.prefix};
}

std::optional<torch::Tensor> float_copy(const TensorEntry& entry) {
  const auto type = float_type(entry.dtype);
  if (!type) return std::nullopt;
  return to_float_tensor(entry, *type);
}

WeightsMatch match_weights(const torch::nn::Module& module, const TensorFile& file,
                           const std::vector<std::string>& ignored_prefixes) {
  LoadPlan plan = plan_load(module, file, ignored_prefixes, /*convert=*/false);
  return {std::move(plan.problems), std::move(plan.prefix)};
}

namespace {

// Float32, contiguous copies of the tensors `keep` accepts, by name (kept alive for views).
std::map<std::string, torch::Tensor> float_state(const torch::nn::Module& module,
                                                 const NameFilter& keep) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, tensor] : named_state(module)) {
    if (!is_optional(name) && keep(name)) {
      state.emplace(name, tensor.detach().to(torch::kFloat32).contiguous());
    }
  }
  return state;
}

std::map<std::string, FloatTensor> views(const std::map<std::string, torch::Tensor>& state) {
  std::map<std::string, FloatTensor> tensors;
  for (const auto& [name, tensor] : state) {
    tensors.emplace(
        name, FloatTensor{tensor.sizes().vec(),
                          {tensor.data_ptr<float>(), static_cast<std::size_t>(tensor.numel())}});
  }
  return tensors;
}

}  // namespace

void save_safetensors(const torch::nn::Module& module, const std::filesystem::path& path) {
  write_safetensors(path, views(float_state(module, [](const std::string&) { return true; })));
}

std::vector<std::byte> encode_tensors(const torch::nn::Module& module, const NameFilter& keep) {
  return encode_safetensors(views(float_state(module, keep)));
}

void decode_tensors(torch::nn::Module& module, std::span<const std::byte> bytes,
                    const std::string& where, const NameFilter& required) {
  const auto entries = parse_safetensors(bytes, where);
  const auto targets = named_state(module);
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  for (const auto& [name, entry] : entries) {
    const auto target = targets.find(name);
    if (target == targets.end()) throw Error(where + "unexpected tensor " + name);
    if (entry.dtype != DType::kF32 || entry.shape != target->second.sizes().vec()) {
      throw Error(where + "tensor " + name + " has shape " + shape_string(entry.shape) +
                  ", expected F32 " + shape_string(target->second.sizes().vec()));
    }
    copies.emplace_back(target->second, to_float_tensor(entry, torch::kFloat32));
  }
  if (required) {
    for (const auto& [name, tensor] : float_state(module, required)) {
      if (!entries.contains(name)) throw Error(where + "missing tensor " + name);
    }
  }
  const torch::NoGradGuard no_grad;
  for (auto& [destination, source] : copies) destination.copy_(source);
}

std::string tensors_sha256(const torch::nn::Module& module, const NameFilter& keep) {
  Sha256 hash;
  for (const auto& [name, tensor] : float_state(module, keep)) {
    hash.update(std::as_bytes(std::span(name.data(), name.size())));
    hash.update(std::as_bytes(
        std::span(tensor.data_ptr<float>(), static_cast<std::size_t>(tensor.numel()))));
  }
  return hash.hex();
}

}  // namespace pv::nn
