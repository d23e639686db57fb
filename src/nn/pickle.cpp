#include "nn/pickle.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include <patchvec/error.h>

#include "nn/pickle_globals.h"

namespace pv::nn::pickle {
namespace {

// The opcodes of Python's pickle protocols 0-5, named as pickle.py names them (MARK, BINPUT,
// STACK_GLOBAL, ...).
enum class Op : std::uint8_t {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kFloat = 'F',
  kInt = 'I',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kLong = 'L',
  kBinInt2 = 'M',
  kNone = 'N',
  kPersId = 'P',
  kBinPersId = 'Q',
  kReduce = 'R',
  kString = 'S',
  kBinString = 'T',
  kShortBinString = 'U',
  kUnicode = 'V',
  kBinUnicode = 'X',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kDict = 'd',
  kEmptyDict = '}',
  kAppends = 'e',
  kGet = 'g',
  kBinGet = 'h',
  kInst = 'i',
  kLongBinGet = 'j',
  kList = 'l',
  kEmptyList = ']',
  kObj = 'o',
  kPut = 'p',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kEmptyTuple = ')',
  kSetItems = 'u',
  kBinFloat = 'G',
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kProto = 0x80,
  kNewObj = 0x81,
  kExt1 = 0x82,
  kExt2 = 0x83,
  kExt4 = 0x84,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kLong4 = 0x8b,
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kBinBytes8 = 0x8e,
  kEmptySet = 0x8f,
  kAddItems = 0x90,
  kFrozenSet = 0x91,
  kNewObjEx = 0x92,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
  kByteArray8 = 0x96,
  kNextBuffer = 0x97,
  kReadOnlyBuffer = 0x98,
};

const char* opcode_name(std::uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::kExt1:
    case Op::kExt2:
    case Op::kExt4:
      return "EXT (extension registry)";
    case Op::kNextBuffer:
      return "NEXT_BUFFER (out-of-band buffer)";
    case Op::kReadOnlyBuffer:
      return "READONLY_BUFFER (out-of-band buffer)";
    default:
      return "unknown";
  }
}

class Machine {
 public:
  Machine(std::span<const std::byte> bytes, const std::string& where, std::deque<Value>& arena)
      : in_(bytes), where_(where), arena_(arena) {}

  const Value* run(std::size_t& consumed);

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + "pickle at byte " + std::to_string(op_at_) + ": " + what);
  }

  Value* make(Kind kind) {
    arena_.emplace_back();
    arena_.back().kind = kind;
    return &arena_.back();
  }

  // Input.
  std::uint8_t byte() {
    if (pos_ >= in_.size()) fail("input ends before the STOP opcode (truncated)");
    return static_cast<std::uint8_t>(in_[pos_++]);
  }
  std::uint64_t le(int width) {
    if (in_.size() - pos_ < static_cast<std::size_t>(width)) {
      fail("input ends inside an argument (truncated)");
    }
    std::uint64_t value = 0;
    for (int i = width - 1; i >= 0; --i) {
      value = value << 8 | static_cast<std::uint64_t>(in_[pos_ + i]);
    }
    pos_ += width;
    return value;
  }
  std::string take(std::uint64_t length) {
    if (length > in_.size() - pos_) {
      fail("a length of " + std::to_string(length) + " bytes runs past the end of the input");
    }
    std::string text(reinterpret_cast<const char*>(in_.data() + pos_),
                     static_cast<std::size_t>(length));
    pos_ += length;
    return text;
  }
  std::string line() {
    std::string text;
    while (true) {
      const auto c = static_cast<char>(byte());
      if (c == '\n') return text;
      if (text.size() > 4096) fail("text argument longer than 4096 bytes");
      text.push_back(c);
    }
  }

  // Stack.
  void push(const Value* value) { stack_.push_back(value); }
  const Value* pop() {
    if (stack_.size() <= base()) fail("stack underflow");
    const Value* value = stack_.back();
    stack_.pop_back();
    return value;
  }
  const Value* top() const {
    if (stack_.size() <= base()) fail("stack underflow");
    return stack_.back();
  }
  std::size_t base() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<const Value*> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<const Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark),
                                    stack_.end());
    stack_.resize(mark);
    return items;
  }
  // Containers are built in place; only values this pickle made are ever modified.
  Value* mutable_of(const Value* value) { return const_cast<Value*>(value); }

  void memo_put(std::uint64_t index) {
    if (index > std::numeric_limits<std::uint32_t>::max()) fail("memo index out of range");
    memo_[static_cast<std::uint32_t>(index)] = top();
  }
  void memo_get(std::uint64_t index) {
    const auto found = memo_.find(static_cast<std::uint32_t>(index));
    if (index > std::numeric_limits<std::uint32_t>::max() || found == memo_.end()) {
      fail("memo entry " + std::to_string(index) + " was never stored");
    }
    push(found->second);
  }

  const Value* integer(std::int64_t v) {
    Value* value = make(Kind::kInt);
    value->integer = v;
    return value;
  }
  const Value* text_value(Kind kind, std::string text) {
    Value* value = make(kind);
    value->text = std::move(text);
    return value;
  }
  const Value* long_value(const std::string& bytes);
  const Value* global(const std::string& module, const std::string& name);
  const Value* call(const Value* callable, const Value* args);
  const Value* persistent(const Value* pid);
  void set_item(const Value* target, const Value* key, const Value* value);
  void append(const Value* target, const Value* item);
  std::int64_t text_integer(const std::string& text);

  std::span<const std::byte> in_;
  const std::string& where_;
  std::deque<Value>& arena_;
  std::size_t pos_ = 0;
  std::size_t op_at_ = 0;
  std::vector<const Value*> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint32_t, const Value*> memo_;
};

const Value* Machine::long_value(const std::string& bytes) {
  // Two's complement, little-endian.
  if (bytes.empty()) return integer(0);
  if (bytes.size() <= 8) {
    std::uint64_t raw = 0;
    for (std::size_t i = bytes.size(); i-- > 0;) {
      raw = raw << 8 | static_cast<std::uint8_t>(bytes[i]);
    }
    const bool negative = (static_cast<std::uint8_t>(bytes.back()) & 0x80) != 0;
    if (negative && bytes.size() < 8) raw |= ~std::uint64_t{0} << (8 * bytes.size());
    return integer(static_cast<std::int64_t>(raw));
  }
  return text_value(Kind::kBigInt, bytes);
}

std::int64_t Machine::text_integer(const std::string& text) {
  std::string digits = text;
  if (!digits.empty() && digits.back() == 'L') digits.pop_back();
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (error != std::errc() || end != digits.data() + digits.size() || digits.empty()) {
    fail("bad integer '" + text.substr(0, 40) + "'");
  }
  return value;
}

const Value* Machine::global(const std::string& module, const std::string& name) {
  if (meaning_of(module, name) == Meaning::kRefused) {
    fail("refers to " + module + "." + name +
         ", which a checkpoint of tensors never needs; refusing the file (a pickle can run code, "
         "and this one asks to)");
  }
  Value* value = make(Kind::kGlobal);
  value->text = module + "." + name;
  return value;
}

const Value* Machine::persistent(const Value* pid) {
  // torch.save: ('storage', torch.FloatStorage, key, location, numel[, view_metadata])
  if (!pid->is(Kind::kTuple) || pid->items.size() < 5 || pid->items.size() > 6 ||
      !pid->items[0]->is(Kind::kString) || pid->items[0]->text != "storage") {
    fail("persistent id is not a PyTorch storage reference");
  }
  const Value* type = pid->items[1];
  const auto dtype = type->is(Kind::kGlobal) ? storage_dtype(type->text) : std::nullopt;
  if (!dtype) fail("persistent id names an unknown storage type");
  if (!pid->items[2]->is(Kind::kString) || !pid->items[3]->is(Kind::kString) ||
      !pid->items[4]->is(Kind::kInt) || pid->items[4]->integer < 0) {
    fail("persistent id has a bad key, location or size");
  }
  if (pid->items.size() == 6 && !pid->items[5]->is(Kind::kNone)) {
    fail("storage views (legacy view_metadata) are not supported");
  }
  Value* storage = make(Kind::kStorage);
  storage->storage = {pid->items[2]->text, *dtype, pid->items[4]->integer};
  return storage;
}

const Value* Machine::call(const Value* callable, const Value* args) {
  if (!callable->is(Kind::kGlobal)) fail("calls a " + std::string(kind_name(callable->kind)));
  if (!args->is(Kind::kTuple)) fail("call arguments are not a tuple");
  const std::string& name = callable->text;
  const auto dot = name.rfind('.');
  const auto& a = args->items;
  const auto int_tuple = [&](const Value* v, const char* what) {
    if (!v->is(Kind::kTuple)) fail(std::string("tensor ") + what + " is not a tuple");
    std::vector<std::int64_t> out;
    for (const Value* item : v->items) {
      if (!item->is(Kind::kInt)) fail(std::string("tensor ") + what + " holds a non-integer");
      out.push_back(item->integer);
    }
    return out;
  };
  switch (meaning_of(name.substr(0, dot), name.substr(dot + 1))) {
    case Meaning::kOrderedDict: {
      Value* dict = make(Kind::kDict);
      if (!a.empty()) {  // OrderedDict([(key, value), ...])
        if (a.size() != 1 || !(a[0]->is(Kind::kList) || a[0]->is(Kind::kTuple))) {
          fail("OrderedDict called with unexpected arguments");
        }
        for (const Value* pair : a[0]->items) {
          if (!(pair->is(Kind::kTuple) || pair->is(Kind::kList)) || pair->items.size() != 2) {
            fail("OrderedDict item is not a pair");
          }
          dict->entries.emplace_back(pair->items[0], pair->items[1]);
        }
      }
      return dict;
    }
    case Meaning::kRebuildTensor:
    case Meaning::kRebuildTensorV2: {
      if (a.size() < 4 || a.size() > 7 || !a[0]->is(Kind::kStorage) || !a[1]->is(Kind::kInt)) {
        fail("tensor rebuilt from unexpected arguments");
      }
      Value* tensor = make(Kind::kTensor);
      tensor->tensor = {a[0], a[1]->integer, int_tuple(a[2], "size"), int_tuple(a[3], "stride")};
      if (tensor->tensor.shape.size() != tensor->tensor.stride.size()) {
        fail("tensor size and stride differ in length");
      }
      return tensor;
    }
    case Meaning::kRebuildParameter:
    case Meaning::kRebuildParameterWithState:
      if (a.empty() || !a[0]->is(Kind::kTensor)) fail("Parameter rebuilt from a non-tensor");
      return a[0];
    case Meaning::kSet:
    case Meaning::kFrozenSet: {
      Value* set = make(Kind::kSet);
      if (a.size() == 1 && (a[0]->is(Kind::kList) || a[0]->is(Kind::kTuple)))
        set->items = a[0]->items;
      else if (!a.empty())
        fail("set called with unexpected arguments");
      return set;
    }
    case Meaning::kCodecsEncode: {
      // Protocol 2 writes Python 3 bytes as _codecs.encode(text, 'latin1'): code points < 256.
      if (a.size() != 2 || !a[0]->is(Kind::kString))
        fail("_codecs.encode with unexpected arguments");
      std::string out;
      const std::string& s = a[0]->text;
      for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<std::uint8_t>(s[i]);
        if (c < 0x80) {
          out.push_back(static_cast<char>(c));
        } else if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) {
          const unsigned code = (c & 0x1Fu) << 6 | (static_cast<std::uint8_t>(s[++i]) & 0x3Fu);
          if (code > 0xFF) fail("_codecs.encode of a character beyond latin-1");
          out.push_back(static_cast<char>(code));
        } else {
          fail("_codecs.encode of a character beyond latin-1");
        }
      }
      return text_value(Kind::kBytes, std::move(out));
    }
    case Meaning::kReconstructor: {
      // copyreg._reconstructor(cls, base, state): an instance of cls.
      if (a.size() != 3 || !a[0]->is(Kind::kGlobal))
        fail("_reconstructor with unexpected arguments");
      Value* object = make(Kind::kObject);
      object->text = a[0]->text;
      return object;
    }
    case Meaning::kStorageType:
      fail("calls a storage type");
    case Meaning::kPlaceholder: {
      Value* object = make(Kind::kObject);
      object->text = name;
      object->items = a;
      return object;
    }
    case Meaning::kRefused:
      break;
  }
  fail("calls " + name);  // unreachable: globals are checked when read
}

void Machine::set_item(const Value* target, const Value* key, const Value* value) {
  if (!target->is(Kind::kDict) && !target->is(Kind::kObject)) {
    fail("SETITEM on a " + std::string(kind_name(target->kind)));
  }
  mutable_of(target)->entries.emplace_back(key, value);
}

void Machine::append(const Value* target, const Value* item) {
  if (target->is(Kind::kList)) {
    mutable_of(target)->items.push_back(item);
  } else if (target->is(Kind::kObject)) {
    mutable_of(target)->appended.push_back(item);
  } else {
    fail("APPEND to a " + std::string(kind_name(target->kind)));
  }
}

const Value* Machine::run(std::size_t& consumed) {
  while (true) {
    op_at_ = pos_;
    const std::uint8_t op = byte();
    switch (static_cast<Op>(op)) {
      case Op::kProto:
        if (byte() > 5) fail("pickle protocol newer than 5");
        break;
      case Op::kFrame:  // a length hint, the frame's opcodes follow inline
        le(8);
        break;
      case Op::kStop: {
        if (!marks_.empty() || stack_.size() != 1) fail("STOP with a malformed stack");
        consumed = pos_;
        return stack_.back();
      }
      case Op::kMark:
        marks_.push_back(stack_.size());
        break;
      case Op::kPop:
        pop();
        break;
      case Op::kPopMark:
        pop_mark();
        break;
      case Op::kDup:
        push(top());
        break;
      // Constants.
      case Op::kNone:
        push(make(Kind::kNone));
        break;
      case Op::kNewTrue:
      case Op::kNewFalse: {
        Value* b = make(Kind::kBool);
        b->boolean = static_cast<Op>(op) == Op::kNewTrue;
        push(b);
        break;
      }
      case Op::kBinInt1:
        push(integer(static_cast<std::int64_t>(le(1))));
        break;
      case Op::kBinInt2:
        push(integer(static_cast<std::int64_t>(le(2))));
        break;
      case Op::kBinInt:
        push(integer(static_cast<std::int32_t>(static_cast<std::uint32_t>(le(4)))));
        break;
      case Op::kLong1:
        push(long_value(take(le(1))));
        break;
      case Op::kLong4: {
        const auto n = le(4);
        if (n > 0x7FFFFFFF) fail("negative LONG4 length");
        push(long_value(take(n)));
        break;
      }
      case Op::kInt: {
        const std::string text = line();
        if (text == "01" || text == "00") {
          Value* b = make(Kind::kBool);
          b->boolean = text == "01";
          push(b);
        } else {
          push(integer(text_integer(text)));
        }
        break;
      }
      case Op::kLong:
        push(integer(text_integer(line())));
        break;
      case Op::kFloat: {
        const std::string text = line();
        Value* f = make(Kind::kFloat);
        char* end = nullptr;
        f->real = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size()) fail("bad float");
        push(f);
        break;
      }
      case Op::kBinFloat: {
        const std::uint64_t bits = [&] {  // big-endian
          std::uint64_t v = 0;
          const std::string raw = take(8);
          for (const char c : raw) v = v << 8 | static_cast<std::uint8_t>(c);
          return v;
        }();
        Value* f = make(Kind::kFloat);
        std::memcpy(&f->real, &bits, sizeof bits);
        push(f);
        break;
      }
      // Text and bytes.
      case Op::kBinUnicode:
        push(text_value(Kind::kString, take(le(4))));
        break;
      case Op::kShortBinUnicode:
        push(text_value(Kind::kString, take(le(1))));
        break;
      case Op::kBinUnicode8:
        push(text_value(Kind::kString, take(le(8))));
        break;
      case Op::kBinBytes:
        push(text_value(Kind::kBytes, take(le(4))));
        break;
      case Op::kShortBinBytes:
        push(text_value(Kind::kBytes, take(le(1))));
        break;
      case Op::kBinBytes8:
      case Op::kByteArray8:
        push(text_value(Kind::kBytes, take(le(8))));
        break;
      case Op::kBinString:  // Python 2 str: Python 3 reads it as str
        push(text_value(Kind::kString, take(le(4))));
        break;
      case Op::kShortBinString:
        push(text_value(Kind::kString, take(le(1))));
        break;
      case Op::kUnicode:
        push(text_value(Kind::kString, line()));  // raw-unicode-escape; escapes kept as written
        break;
      case Op::kString: {
        std::string text = line();
        if (text.size() < 2 || (text.front() != '\'' && text.front() != '"') ||
            text.back() != text.front()) {
          fail("STRING argument is not quoted");
        }
        push(text_value(Kind::kString, text.substr(1, text.size() - 2)));
        break;
      }
      // Containers.
      case Op::kEmptyTuple:
        push(make(Kind::kTuple));
        break;
      case Op::kTuple1:
      case Op::kTuple2:
      case Op::kTuple3: {
        const std::size_t n = op - 0x84u;
        if (stack_.size() < base() + n) fail("stack underflow");
        Value* tuple = make(Kind::kTuple);
        tuple->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        push(tuple);
        break;
      }
      case Op::kTuple: {
        Value* tuple = make(Kind::kTuple);
        tuple->items = pop_mark();
        push(tuple);
        break;
      }
      case Op::kEmptyList:
        push(make(Kind::kList));
        break;
      case Op::kList: {
        Value* list = make(Kind::kList);
        list->items = pop_mark();
        push(list);
        break;
      }
      case Op::kEmptyDict:
        push(make(Kind::kDict));
        break;
      case Op::kDict: {
        const auto items = pop_mark();
        if (items.size() % 2 != 0) fail("DICT with an odd number of items");
        Value* dict = make(Kind::kDict);
        for (std::size_t i = 0; i < items.size(); i += 2)
          dict->entries.emplace_back(items[i], items[i + 1]);
        push(dict);
        break;
      }
      case Op::kEmptySet:
        push(make(Kind::kSet));
        break;
      case Op::kAddItems: {
        const auto items = pop_mark();
        const Value* set = top();
        if (!set->is(Kind::kSet)) fail("ADDITEMS to a " + std::string(kind_name(set->kind)));
        for (const Value* item : items) mutable_of(set)->items.push_back(item);
        break;
      }
      case Op::kFrozenSet: {
        Value* set = make(Kind::kSet);
        set->items = pop_mark();
        push(set);
        break;
      }
      case Op::kAppend: {
        const Value* item = pop();
        append(top(), item);
        break;
      }
      case Op::kAppends: {
        const auto items = pop_mark();
        const Value* target = top();
        for (const Value* item : items) append(target, item);
        break;
      }
      case Op::kSetItem: {
        const Value* value = pop();
        const Value* key = pop();
        set_item(top(), key, value);
        break;
      }
      case Op::kSetItems: {
        const auto items = pop_mark();
        if (items.size() % 2 != 0) fail("SETITEMS with an odd number of items");
        const Value* target = top();
        for (std::size_t i = 0; i < items.size(); i += 2) set_item(target, items[i], items[i + 1]);
        break;
      }
      // Memo.
      case Op::kPut:
        memo_put(static_cast<std::uint64_t>(text_integer(line())));
        break;
      case Op::kBinPut:
        memo_put(le(1));
        break;
      case Op::kLongBinPut:
        memo_put(le(4));
        break;
      case Op::kMemoize:
        memo_put(memo_.size());
        break;
      case Op::kGet: {
        const auto index = text_integer(line());
        if (index < 0) fail("negative memo index");
        memo_get(static_cast<std::uint64_t>(index));
        break;
      }
      case Op::kBinGet:
        memo_get(le(1));
        break;
      case Op::kLongBinGet:
        memo_get(le(4));
        break;
      // Objects.
      case Op::kGlobal: {
        const std::string module = line();
        const std::string name = line();
        push(global(module, name));
        break;
      }
      case Op::kStackGlobal: {
        const Value* name = pop();
        const Value* module = pop();
        if (!module->is(Kind::kString) || !name->is(Kind::kString)) {
          fail("STACK_GLOBAL of non-strings");
        }
        push(global(module->text, name->text));
        break;
      }
      case Op::kReduce: {
        const Value* args = pop();
        const Value* callable = pop();
        push(call(callable, args));
        break;
      }
      case Op::kNewObj: {  // cls.__new__(cls, *args)
        const Value* args = pop();
        const Value* cls = pop();
        push(call(cls, args));
        break;
      }
      case Op::kNewObjEx: {
        const Value* kwargs = pop();
        const Value* args = pop();
        const Value* cls = pop();
        if (!kwargs->is(Kind::kDict)) fail("NEWOBJ_EX keyword arguments are not a dict");
        push(call(cls, args));
        break;
      }
      case Op::kInst: {  // module name: an instance of a class with the marked arguments
        const std::string module = line();
        const std::string name = line();
        const Value* cls = global(module, name);
        Value* args = make(Kind::kTuple);
        args->items = pop_mark();
        push(call(cls, args));
        break;
      }
      case Op::kObj: {  // class and arguments above the mark
        auto items = pop_mark();
        if (items.empty()) fail("OBJ without a class");
        Value* args = make(Kind::kTuple);
        args->items.assign(items.begin() + 1, items.end());
        push(call(items.front(), args));
        break;
      }
      case Op::kBuild: {  // kept as the object's state, never applied by running code
        const Value* state = pop();
        mutable_of(top())->state = state;
        break;
      }
      case Op::kPersId:
      case Op::kBinPersId: {
        const Value* pid =
            static_cast<Op>(op) == Op::kBinPersId ? pop() : text_value(Kind::kString, line());
        push(persistent(pid));
        break;
      }
      default:
        fail(std::string("unsupported opcode 0x") + "0123456789abcdef"[op >> 4] +
             "0123456789abcdef"[op & 15] + " (" + opcode_name(op) + ")");
    }
  }
}

}  // namespace

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
    case Kind::kBigInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kBytes:
      return "bytes";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kSet:
      return "set";
    case Kind::kDict:
      return "dict";
    case Kind::kGlobal:
      return "class or function";
    case Kind::kObject:
      return "object";
    case Kind::kStorage:
      return "storage";
    case Kind::kTensor:
      return "tensor";
  }
  return "value";
}

const Value* Value::find(std::string_view key) const {
  // Later SETITEMs win, as in Python.
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->first->is(Kind::kString) && it->first->text == key) return it->second;
  }
  return nullptr;
}

const Value* Value::attribute(std::string_view name) const {
  if (state == nullptr) return nullptr;
  if (state->is(Kind::kDict)) return state->find(name);
  // (state, slotstate) tuples: look in the first.
  if (state->is(Kind::kTuple) && !state->items.empty() && state->items[0]->is(Kind::kDict)) {
    return state->items[0]->find(name);
  }
  return nullptr;
}

Pickle::Pickle(std::span<const std::byte> bytes, const std::string& where) {
  Machine machine(bytes, where, arena_);
  root_ = machine.run(consumed_);
}

}  // namespace pv::nn::pickle
