// NumPy .npy files of float32 (little-endian, C order): the interchange format with Python tools.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace pv {

struct FloatArray {
  std::vector<std::int64_t> shape;
  std::vector<float> values;  // row-major, product(shape) elements
};

// Written atomically (see AtomicFile). Throws pv::Error if shape and values disagree.
void write_npy(const std::filesystem::path& path, std::span<const std::int64_t> shape,
               std::span<const float> values);

// Reads '<f4' arrays in C order; anything else is a pv::Error naming the file.
FloatArray read_npy(const std::filesystem::path& path);

}  // namespace pv
