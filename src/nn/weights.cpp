#include "nn/weights.h"

#include <algorithm>
#include <map>
#include <optional>
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
};

LoadPlan plan_load(const torch::nn::Module& module, const SafetensorsFile& file,
                   const std::vector<std::string>& ignored_prefixes, bool convert) {
  const auto targets = named_state(module);
  const auto is_ignored = [&](const std::string& key) {
    return std::any_of(ignored_prefixes.begin(), ignored_prefixes.end(),
                       [&](const std::string& prefix) { return key.starts_with(prefix); });
  };
  LoadPlan plan;
  for (const auto& [name, destination] : targets) {
    const auto found = file.tensors().find(name);
    if (found == file.tensors().end()) {
      if (!is_optional(name)) {
        plan.problems.push_back("missing key " + name + " (expected shape " +
                                shape_string(destination.sizes().vec()) + ")");
      }
      continue;
    }
    if (is_optional(name)) continue;  // a counter, not a weight
    const TensorEntry& entry = found->second;
    const auto type = float_type(entry.dtype);
    if (!type) {
      plan.problems.push_back("key " + name + " has dtype " + std::string(dtype_name(entry.dtype)) +
                              ", expected F32, F16, BF16 or F64");
    } else if (entry.shape != destination.sizes().vec()) {
      plan.problems.push_back("key " + name + " has shape " + shape_string(entry.shape) +
                              ", expected " + shape_string(destination.sizes().vec()));
    } else if (convert) {
      plan.copies.emplace_back(destination, to_float_tensor(entry, *type));
    }
  }
  for (const auto& [name, entry] : file.tensors()) {
    if (targets.contains(name)) continue;
    if (is_ignored(name)) {
      ++plan.ignored;
    } else {
      plan.problems.push_back("unexpected key " + name + " " + shape_string(entry.shape));
    }
  }
  return plan;
}

}  // namespace

WeightsReport load_safetensors(torch::nn::Module& module, const std::filesystem::path& path,
                               const std::vector<std::string>& ignored_prefixes) {
  const SafetensorsFile file(path);
  LoadPlan plan = plan_load(module, file, ignored_prefixes, /*convert=*/true);
  if (!plan.problems.empty()) {
    throw Error("weights file " + path.string() + " does not fit backbone (" +
                std::to_string(plan.problems.size()) + " problems):" + problem_list(plan.problems));
  }
  const torch::NoGradGuard no_grad;
  for (auto& [destination, source] : plan.copies) destination.copy_(source);
  return {.loaded = plan.copies.size(), .ignored = plan.ignored};
}

std::vector<std::string> weight_problems(const torch::nn::Module& module,
                                         const std::filesystem::path& path,
                                         const std::vector<std::string>& ignored_prefixes) {
  return plan_load(module, SafetensorsFile(path), ignored_prefixes, /*convert=*/false).problems;
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
                    const std::string& where) {
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
