#include "nn/weights.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string_view>

#include <torch/utils.h>

#include <patchvec/error.h>

#include "nn/safetensors.h"

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

void save_safetensors(const torch::nn::Module& module, const std::filesystem::path& path) {
  std::map<std::string, FloatTensor> tensors;
  std::vector<torch::Tensor> keep_alive;
  for (const auto& [name, tensor] : named_state(module)) {
    if (is_optional(name)) continue;
    keep_alive.push_back(tensor.detach().to(torch::kFloat32).contiguous());
    const auto& stored = keep_alive.back();
    tensors.emplace(
        name, FloatTensor{stored.sizes().vec(),
                          {stored.data_ptr<float>(), static_cast<std::size_t>(stored.numel())}});
  }
  write_safetensors(path, tensors);
}

}  // namespace pv::nn
