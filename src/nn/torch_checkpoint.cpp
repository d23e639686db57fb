#include "nn/torch_checkpoint.h"

#include <cstring>
#include <limits>

#include <patchvec/error.h>

#include "util/zip.h"

namespace pv::nn {
namespace {

using pickle::Kind;
using pickle::Value;

// The legacy format's first pickle: this number, as a little-endian LONG1.
constexpr unsigned char kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                          0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr std::int64_t kLegacyProtocol = 1001;

bool starts_with(std::span<const std::byte> bytes, std::initializer_list<unsigned char> prefix) {
  if (bytes.size() < prefix.size()) return false;
  std::size_t i = 0;
  for (const unsigned char c : prefix) {
    if (bytes[i++] != std::byte{c}) return false;
  }
  return true;
}

bool is_legacy(std::span<const std::byte> bytes) {
  // PROTO 2, LONG1 of 10 bytes, the magic.
  if (!starts_with(bytes, {0x80, 0x02, 0x8a, 0x0a}) || bytes.size() < 14) return false;
  return std::memcmp(bytes.data() + 4, kLegacyMagic, sizeof kLegacyMagic) == 0;
}

std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const std::string& what) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) throw Error(what);
  return a * b;
}

}  // namespace

struct TorchCheckpoint::Impl {
  std::optional<MappedFile> file;
  std::span<const std::byte> bytes;
  std::string where;
  std::string_view format;
  std::optional<pickle::Pickle> object;
  std::map<std::string, std::span<const std::byte>> storages;  // key -> bytes, all checked
  mutable std::deque<std::vector<std::byte>> owned;            // inflated storages, copies
  mutable std::uint64_t copied = 0;  // bytes of strided views gathered into `owned` so far

  void parse();
  void parse_zip();
  void parse_legacy();
  void check_storage_references();
};

void TorchCheckpoint::Impl::parse() {
  if (ZipArchive::looks_like_zip(bytes)) {
    format = "PyTorch zip";
    parse_zip();
  } else if (is_legacy(bytes)) {
    format = "PyTorch legacy";
    parse_legacy();
  } else if (bytes.size() > 262 && std::memcmp(bytes.data() + 257, "ustar", 5) == 0) {
    throw Error(where +
                "a tar checkpoint from PyTorch < 0.4; load and re-save it with a newer "
                "torch.save()");
  } else {
    throw Error(where + "not a PyTorch checkpoint (neither a zip archive nor the legacy format)");
  }
  check_storage_references();
}

void TorchCheckpoint::Impl::parse_zip() {
  const ZipArchive zip(bytes, where);
  const ZipArchive::Entry* data_pkl = nullptr;
  std::string prefix;
  for (const auto& entry : zip.entries()) {
    const auto slash = entry.name.find('/');
    if (slash != std::string::npos && entry.name.substr(slash + 1) == "data.pkl") {
      if (data_pkl != nullptr) throw Error(where + "holds more than one data.pkl");
      data_pkl = &entry;
      prefix = entry.name.substr(0, slash + 1);
    }
  }
  if (data_pkl == nullptr) {
    throw Error(where + "a zip archive without <archive>/data.pkl: not a PyTorch checkpoint");
  }
  if (const auto* order = zip.find(prefix + "byteorder")) {
    const auto text = zip.read(*order, 16);
    if (std::string(reinterpret_cast<const char*>(text.data()), text.size()) != "little") {
      throw Error(where + "saved on a big-endian machine; re-save it on a little-endian one");
    }
  }
  const auto pkl = zip.read(*data_pkl, std::uint64_t{1} << 31);
  object.emplace(pkl, where);
  if (object->consumed() != pkl.size()) {
    throw Error(where + "data.pkl has bytes after its STOP opcode");
  }
  for (const auto& value : object->values()) {
    if (!value.is(Kind::kStorage) || storages.contains(value.storage.key)) continue;
    const std::string& key = value.storage.key;
    const auto* entry = zip.find(prefix + "data/" + key);
    if (entry == nullptr) throw Error(where + "storage '" + key + "' is missing from the archive");
    if (entry->method == 0) {
      storages.emplace(key, zip.stored(*entry));
    } else {
      owned.push_back(zip.read(*entry));
      storages.emplace(key, owned.back());
    }
  }
}

void TorchCheckpoint::Impl::parse_legacy() {
  std::size_t at = 0;
  const auto next = [&](const char* what) {
    pickle::Pickle p(bytes.subspan(at), where + what + ": ");
    at += p.consumed();
    return p;
  };
  next("magic number");  // checked by is_legacy()
  const auto protocol = next("protocol version");
  if (!protocol.root().is(Kind::kInt) || protocol.root().integer != kLegacyProtocol) {
    throw Error(where + "legacy format with an unknown protocol version");
  }
  const auto info = next("system info");
  if (const Value* little = info.root().find("little_endian");
      little != nullptr && little->is(Kind::kBool) && !little->boolean) {
    throw Error(where + "saved on a big-endian machine; re-save it on a little-endian one");
  }
  object.emplace(next("object"));
  const auto keys = next("storage keys");
  if (!keys.root().is(Kind::kList)) throw Error(where + "legacy storage key list is not a list");
  std::map<std::string, const Value*> referenced;
  for (const auto& value : object->values()) {
    if (value.is(Kind::kStorage)) referenced.emplace(value.storage.key, &value);
  }
  for (const Value* key : keys.root().items) {
    if (!key->is(Kind::kString)) throw Error(where + "legacy storage key is not a string");
    const auto found = referenced.find(key->text);
    if (found == referenced.end()) {
      throw Error(where + "legacy storage '" + key->text + "' is not used by any tensor");
    }
    if (storages.contains(key->text))
      throw Error(where + "legacy storage '" + key->text + "' twice");
    if (bytes.size() - at < 8) throw Error(where + "truncated before storage '" + key->text + "'");
    std::uint64_t count = 0;
    for (int i = 7; i >= 0; --i) count = count << 8 | static_cast<std::uint64_t>(bytes[at + i]);
    at += 8;
    const auto& storage = found->second->storage;
    if (count != static_cast<std::uint64_t>(storage.numel)) {
      throw Error(where + "storage '" + key->text + "' holds " + std::to_string(count) +
                  " elements, its tensors say " + std::to_string(storage.numel));
    }
    const std::uint64_t length = checked_mul(count, dtype_size(storage.dtype),
                                             where + "storage '" + key->text + "' is too large");
    if (length > bytes.size() - at) {
      throw Error(where + "storage '" + key->text + "' runs past the end of the file (truncated)");
    }
    storages.emplace(key->text, bytes.subspan(at, length));
    at += length;
  }
  if (at != bytes.size()) throw Error(where + "bytes after the last storage");
}

void TorchCheckpoint::Impl::check_storage_references() {
  // Every reference to a storage must agree on its dtype and size, and fit the bytes there.
  std::map<std::string, const pickle::StorageRef*> first;
  for (const auto& value : object->values()) {
    if (!value.is(Kind::kStorage)) continue;
    const auto& s = value.storage;
    const auto found = storages.find(s.key);
    if (found == storages.end()) throw Error(where + "storage '" + s.key + "' has no data");
    const std::uint64_t expected =
        checked_mul(static_cast<std::uint64_t>(s.numel), dtype_size(s.dtype),
                    where + "storage '" + s.key + "' is too large");
    if (found->second.size() != expected) {
      throw Error(where + "storage '" + s.key + "' holds " + std::to_string(found->second.size()) +
                  " bytes, its tensors say " + std::to_string(expected));
    }
    const auto [it, added] = first.emplace(s.key, &s);
    if (!added && (it->second->dtype != s.dtype || it->second->numel != s.numel)) {
      throw Error(where + "storage '" + s.key + "' is referenced with two different types");
    }
  }
}

TorchCheckpoint::TorchCheckpoint(const std::filesystem::path& path)
    : impl_(std::make_unique<Impl>()) {
  impl_->where = "weights file " + path.string() + ": ";
  impl_->file.emplace(path);
  impl_->bytes = impl_->file->bytes();
  impl_->parse();
}

TorchCheckpoint::TorchCheckpoint(std::span<const std::byte> bytes, const std::string& name)
    : impl_(std::make_unique<Impl>()) {
  impl_->where = name + ": ";
  impl_->bytes = bytes;
  impl_->parse();
}

TorchCheckpoint::~TorchCheckpoint() = default;
TorchCheckpoint::TorchCheckpoint(TorchCheckpoint&&) noexcept = default;
TorchCheckpoint& TorchCheckpoint::operator=(TorchCheckpoint&&) noexcept = default;

const pickle::Value& TorchCheckpoint::root() const {
  return impl_->object->root();
}
const std::string& TorchCheckpoint::where() const {
  return impl_->where;
}
std::string_view TorchCheckpoint::format() const {
  return impl_->format;
}

bool TorchCheckpoint::looks_like(std::span<const std::byte> bytes) {
  return ZipArchive::looks_like_zip(bytes) || is_legacy(bytes);
}

TensorEntry TorchCheckpoint::tensor(const pickle::Value& value, const std::string& name) const {
  const std::string field = impl_->where + "tensor " + name + ": ";
  if (!value.is(Kind::kTensor)) throw Error(field + "not a tensor");
  const auto& t = value.tensor;
  const auto& storage = t.storage->storage;
  const std::span<const std::byte> data = impl_->storages.at(storage.key);
  const std::size_t element = dtype_size(storage.dtype);
  if (t.shape.size() > 16) throw Error(field + "more than 16 dimensions");
  if (t.offset < 0) throw Error(field + "negative storage offset");
  std::uint64_t count = 1;
  std::uint64_t last = static_cast<std::uint64_t>(t.offset);  // highest element index used
  bool contiguous = true;
  std::uint64_t expected_stride = 1;
  for (std::size_t d = t.shape.size(); d-- > 0;) {
    if (t.shape[d] < 0 || t.stride[d] < 0) throw Error(field + "negative size or stride");
    const auto size = static_cast<std::uint64_t>(t.shape[d]);
    const auto stride = static_cast<std::uint64_t>(t.stride[d]);
    count = checked_mul(count, size, field + "too many elements");
    if (size > 1 && stride != expected_stride) contiguous = false;
    expected_stride = checked_mul(expected_stride, size, field + "too many elements");
    if (size > 0) {
      const std::uint64_t reach = checked_mul(size - 1, stride, field + "stride out of range");
      if (reach > std::numeric_limits<std::uint64_t>::max() - last) {
        throw Error(field + "stride out of range");
      }
      last += reach;
    }
  }
  TensorEntry entry{.dtype = storage.dtype, .shape = t.shape};
  if (count == 0) return entry;
  if (last >= static_cast<std::uint64_t>(storage.numel)) {
    throw Error(field + "reaches element " + std::to_string(last) + " of a storage of " +
                std::to_string(storage.numel) + " (offset or strides past its end)");
  }
  if (contiguous) {
    entry.bytes = data.subspan(static_cast<std::size_t>(t.offset) * element, count * element);
    return entry;
  }
  // A strided view is gathered into a copy, so its size is bounded before anything is allocated:
  // no view may hold more elements than its storage (zero or overlapping strides would expand a
  // few bytes into gigabytes), and all copies together no more than the storages hold. Memory
  // stays within twice the storages' bytes whatever the fields say.
  if (count > static_cast<std::uint64_t>(storage.numel)) {
    throw Error(field + "a view of " + std::to_string(count) + " elements over a storage of " +
                std::to_string(storage.numel) + " (zero or overlapping strides)");
  }
  std::uint64_t budget = 0;
  for (const auto& [key, bytes] : impl_->storages) budget += bytes.size();
  if (impl_->copied + count * element > budget) {
    throw Error(field + "strided views would copy more bytes than the file's storages hold (" +
                std::to_string(budget) + ")");
  }
  impl_->copied += count * element;
  // A strided view: gather it into row-major order.
  std::vector<std::byte> out(count * element);
  std::vector<std::int64_t> index(t.shape.size(), 0);
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t at = static_cast<std::uint64_t>(t.offset);
    for (std::size_t d = 0; d < index.size(); ++d) {
      at += static_cast<std::uint64_t>(index[d]) * static_cast<std::uint64_t>(t.stride[d]);
    }
    std::memcpy(out.data() + i * element, data.data() + at * element, element);
    for (std::size_t d = index.size(); d-- > 0;) {
      if (++index[d] < t.shape[d]) break;
      index[d] = 0;
    }
  }
  impl_->owned.push_back(std::move(out));
  entry.bytes = impl_->owned.back();
  return entry;
}

std::map<std::string, TensorEntry> TorchCheckpoint::state_dict() const {
  const Value& root = this->root();
  const auto holds_tensors = [](const Value* v) {
    if (v == nullptr || !v->is(Kind::kDict)) return false;
    for (const auto& [key, value] : v->entries) {
      if (value->is(Kind::kTensor)) return true;
    }
    return false;
  };
  const Value* dict = nullptr;
  if (holds_tensors(&root)) {
    dict = &root;
  } else if (root.is(Kind::kDict)) {
    for (const char* key : {"state_dict", "model_state_dict", "model"}) {
      if (holds_tensors(root.find(key))) {
        dict = root.find(key);
        break;
      }
    }
  }
  if (dict == nullptr) {
    if (root.is(Kind::kObject)) {
      throw Error(impl_->where + "holds a whole pickled " + root.text +
                  ", not a state_dict; save model.state_dict() instead");
    }
    throw Error(impl_->where +
                "holds no state_dict (a dict of tensors, or one under "
                "'state_dict', 'model_state_dict' or 'model')");
  }
  std::map<std::string, TensorEntry> tensors;
  for (const auto& [key, value] : dict->entries) {
    if (!value->is(Kind::kTensor)) continue;
    if (!key->is(Kind::kString)) throw Error(impl_->where + "state_dict key is not a string");
    tensors.insert_or_assign(key->text, tensor(*value, key->text));
  }
  return tensors;
}

}  // namespace pv::nn
