#include <cstring>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>

#include <patchvec/error.h>
#include <patchvec/files.h>
#include <patchvec/npy.h>

namespace pv {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;

std::int64_t element_count(std::span<const std::int64_t> shape) {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

std::string shape_tuple(std::span<const std::int64_t> shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  if (shape.size() == 1) text += ",";
  return text + ")";
}

}  // namespace

void write_npy(const std::filesystem::path& path, std::span<const std::int64_t> shape,
               std::span<const float> values) {
  if (element_count(shape) != static_cast<std::int64_t>(values.size())) {
    throw Error("npy file " + path.string() + ": shape " + shape_tuple(shape) + " does not hold " +
                std::to_string(values.size()) + " values");
  }
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  // Version 1.0 header: magic(6) + version(2) + length(2) + header, padded to 64 bytes.
  const std::size_t unpadded = kMagicSize + 4 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  if (header.size() > 65535) throw Error("npy file " + path.string() + ": shape too long");

  std::string preamble(kMagic, kMagicSize);
  preamble += '\x01';
  preamble += '\x00';
  preamble += static_cast<char>(header.size() & 0xff);
  preamble += static_cast<char>(header.size() >> 8);
  AtomicFile file(path);
  file.write(preamble + header);
  file.write(std::as_bytes(values));
  file.commit();
}

FloatArray read_npy(const std::filesystem::path& path) {
  const auto bytes = read_file(path);
  const auto bad = [&](const std::string& why) {
    return Error("npy file " + path.string() + ": " + why);
  };
  if (bytes.size() < kMagicSize + 4 || std::memcmp(bytes.data(), kMagic, kMagicSize) != 0) {
    throw bad("not a .npy file");
  }
  const auto major = static_cast<unsigned>(bytes[6]);
  std::size_t header_size = 0;
  std::size_t header_start = 0;
  if (major == 1) {
    header_size = static_cast<std::size_t>(bytes[8]) | static_cast<std::size_t>(bytes[9]) << 8;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw bad("truncated header");
    for (int i = 3; i >= 0; --i)
      header_size = header_size << 8 | static_cast<std::size_t>(bytes[8 + i]);
    header_start = 12;
  } else {
    throw bad("unsupported version " + std::to_string(major));
  }
  if (header_start + header_size > bytes.size()) throw bad("truncated header");
  const std::string header(reinterpret_cast<const char*>(bytes.data()) + header_start, header_size);

  if (header.find("'descr': '<f4'") == std::string::npos) throw bad("dtype is not float32 ('<f4')");
  if (header.find("'fortran_order': False") == std::string::npos) throw bad("not in C order");
  const auto shape_start = header.find("'shape': (");
  const auto shape_end = header.find(')', shape_start);
  if (shape_start == std::string::npos || shape_end == std::string::npos) {
    throw bad("no shape in header");
  }
  FloatArray array;
  std::istringstream dims(header.substr(shape_start + 10, shape_end - shape_start - 10));
  for (std::string dim; std::getline(dims, dim, ',');) {
    if (dim.find_first_not_of(' ') == std::string::npos) continue;  // "(3,)"
    array.shape.push_back(std::stoll(dim));
  }
  const auto count = static_cast<std::size_t>(element_count(array.shape));
  const std::size_t data_start = header_start + header_size;
  if (bytes.size() - data_start != count * sizeof(float)) {
    throw bad("holds " + std::to_string(bytes.size() - data_start) + " data bytes, shape " +
              shape_tuple(array.shape) + " needs " + std::to_string(count * sizeof(float)));
  }
  array.values.resize(count);
  std::memcpy(array.values.data(), bytes.data() + data_start, count * sizeof(float));
  return array;
}

}  // namespace pv
