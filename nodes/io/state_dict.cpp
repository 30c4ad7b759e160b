#include "io/state_dict.h"

#include "umrflow/archive_check.h"
#include "umrflow/files.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <variant>

namespace umrflow::io {

void write_state_dict(const std::string& path, const NamedTensors& tensors) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, t] : tensors) dict.insert(name, t.detach().cpu().contiguous());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

namespace {

// The values a torch.save pickle can hold, as far as state dicts need them.
struct Value;
using ValuePtr = std::shared_ptr<Value>;
struct Global {
  std::string module, name;
};
struct Value {
  enum class Kind { none, boolean, integer, number, text, tuple, list, dict, tensor, global, storage_ref, mark } kind = Kind::none;
  bool b = false;
  std::int64_t i = 0;
  double d = 0;
  std::string s;
  std::vector<ValuePtr> items;                        // tuple, list
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // dict, in insertion order
  torch::Tensor tensor;
  Global global;
  int depth = 0;  // nesting below this value (containers); bounded so destruction cannot overflow the stack
};
ValuePtr make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}

class Unpickler {
 public:
  Unpickler(const std::string& file, caffe2::serialize::PyTorchStreamReader& zip) : file_(file), zip_(zip) {}

  ValuePtr run(const std::vector<char>& data) {
    data_ = &data;
    pos_ = 0;
    while (true) {
      const std::uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;                              // PROTO
        case '.': return pop();                                // STOP
        case '}': push(make(Value::Kind::dict)); break;        // EMPTY_DICT
        case ']': push(make(Value::Kind::list)); break;        // EMPTY_LIST
        case ')': push(make(Value::Kind::tuple)); break;       // EMPTY_TUPLE
        case 'N': push(make(Value::Kind::none)); break;        // NONE
        case 0x88: case 0x89: {                                // NEWTRUE, NEWFALSE
          auto v = make(Value::Kind::boolean);
          v->b = op == 0x88;
          push(v);
          break;
        }
        case '(': push(make(Value::Kind::mark)); break;        // MARK
        case 'q': memo_[byte()] = top(); break;                // BINPUT
        case 'r': memo_[u32()] = top(); break;                 // LONG_BINPUT
        case 'h': push(memo(byte())); break;                   // BINGET
        case 'j': push(memo(u32())); break;                    // LONG_BINGET
        case 'K': push(integer(byte())); break;                // BININT1
        case 'M': push(integer(u16())); break;                 // BININT2
        case 'J': push(integer(static_cast<std::int32_t>(u32()))); break;  // BININT
        case 0x8a: {                                           // LONG1
          const std::uint8_t n = byte();
          if (n > 8) fail("an integer of " + std::to_string(n) + " bytes (LONG1 beyond 64 bits)");
          std::uint64_t u = 0;  // little-endian two's complement, sign-extended below
          for (int k = 0; k < n; ++k) u |= static_cast<std::uint64_t>(byte()) << (8 * k);
          if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~std::uint64_t{0} << (8 * n);
          push(integer(static_cast<std::int64_t>(u)));
          break;
        }
        case 'G': {                                            // BINFLOAT (big-endian double)
          std::uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | byte();
          auto v = make(Value::Kind::number);
          std::memcpy(&v->d, &bits, 8);
          push(v);
          break;
        }
        case 'X': push(text(u32())); break;                    // BINUNICODE
        case 0x8c: push(text(byte())); break;                  // SHORT_BINUNICODE
        case 'c': {                                            // GLOBAL
          auto v = make(Value::Kind::global);
          v->global = {line(), line()};
          push(v);
          break;
        }
        case 0x85: case 0x86: case 0x87: {                     // TUPLE1..3
          auto t = make(Value::Kind::tuple);
          t->items.resize(op - 0x84);
          for (auto it = t->items.rbegin(); it != t->items.rend(); ++it) *it = pop();
          for (const auto& x : t->items) nest(t, x);
          push(t);
          break;
        }
        case 't': {                                            // TUPLE
          auto t = make(Value::Kind::tuple);
          t->items = pop_to_mark();
          for (const auto& x : t->items) nest(t, x);
          push(t);
          break;
        }
        case 'a': {                                            // APPEND
          auto v = pop();
          nest(top(), v);
          top()->items.push_back(v);
          break;
        }
        case 'e': {                                            // APPENDS
          auto vs = pop_to_mark();
          auto l = top();
          for (const auto& x : vs) nest(l, x);
          l->items.insert(l->items.end(), vs.begin(), vs.end());
          break;
        }
        case 's': {                                            // SETITEM
          auto v = pop();
          auto k = pop();
          nest(dict(top()), k);
          nest(top(), v);
          dict(top())->entries.emplace_back(k, v);
          break;
        }
        case 'u': {                                            // SETITEMS
          auto vs = pop_to_mark();
          auto d = dict(top());
          for (const auto& x : vs) nest(d, x);
          for (std::size_t k = 0; k + 1 < vs.size(); k += 2) d->entries.emplace_back(vs[k], vs[k + 1]);
          break;
        }
        case 'b': pop(); break;                                // BUILD: object state (an OrderedDict's _metadata) is not needed
        case 'Q': push(persistent(pop())); break;              // BINPERSID
        case 'R': {                                            // REDUCE
          auto args = pop();
          auto fn = pop();
          push(reduce(fn, args));
          break;
        }
        default: fail("unsupported pickle opcode 0x" + hex(op) + " at byte " + std::to_string(pos_ - 1));
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error("'" + file_ + "' is not a state dict umrflow can read: " + why);
  }
  static std::string hex(unsigned v) {
    char b[8];
    std::snprintf(b, sizeof b, "%02x", v);
    return b;
  }
  std::uint8_t byte() {
    if (pos_ >= data_->size()) fail("the pickle ends early");
    return static_cast<std::uint8_t>((*data_)[pos_++]);
  }
  std::uint32_t u16() {  // two statements: the operands of | are unsequenced
    const std::uint32_t lo = byte();
    return lo | (static_cast<std::uint32_t>(byte()) << 8);
  }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= static_cast<std::uint32_t>(byte()) << (8 * k);
    return v;
  }
  std::string line() {
    std::string s;
    for (char c; (c = static_cast<char>(byte())) != '\n';) s += c;
    return s;
  }
  ValuePtr integer(std::int64_t v) {
    auto p = make(Value::Kind::integer);
    p->i = v;
    return p;
  }
  ValuePtr text(std::size_t n) {
    if (pos_ + n > data_->size()) fail("a string runs past the end");
    auto p = make(Value::Kind::text);
    p->s.assign(data_->data() + pos_, n);
    pos_ += n;
    return p;
  }
  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  ValuePtr pop() {
    if (stack_.empty()) fail("stack underflow");
    auto v = stack_.back();
    stack_.pop_back();
    return v;
  }
  ValuePtr top() {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }
  ValuePtr memo(std::uint32_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) fail("memo entry " + std::to_string(k) + " is missing");
    return it->second;
  }
  std::vector<ValuePtr> pop_to_mark() {
    std::vector<ValuePtr> out;
    while (true) {
      auto v = pop();
      if (v->kind == Value::Kind::mark) break;
      out.push_back(v);
    }
    return {out.rbegin(), out.rend()};
  }
  /// Records that `child` goes inside `parent`; a state dict nests a few
  /// levels, so anything deeper than kMaxDepth is refused before it exists.
  static constexpr int kMaxDepth = 100;
  void nest(const ValuePtr& parent, const ValuePtr& child) {
    if (parent.get() == child.get()) fail("a container that contains itself");
    parent->depth = std::max(parent->depth, child->depth + 1);
    if (parent->depth > kMaxDepth) fail("values nested deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  ValuePtr dict(ValuePtr d) {
    if (d->kind != Value::Kind::dict) fail("SETITEM(S) on something that is not a dict");
    return d;
  }

  static c10::ScalarType storage_dtype(const std::string& name) {
    static const std::map<std::string, c10::ScalarType> types = {
        {"FloatStorage", torch::kFloat32}, {"DoubleStorage", torch::kFloat64}, {"HalfStorage", torch::kFloat16},
        {"BFloat16Storage", torch::kBFloat16}, {"LongStorage", torch::kInt64}, {"IntStorage", torch::kInt32},
        {"ShortStorage", torch::kInt16}, {"CharStorage", torch::kInt8}, {"ByteStorage", torch::kUInt8},
        {"BoolStorage", torch::kBool}};
    auto it = types.find(name);
    return it == types.end() ? c10::ScalarType::Undefined : it->second;
  }

  /// ('storage', torch.FloatStorage, key, location, numel) -> the storage's bytes as a flat tensor.
  ValuePtr persistent(const ValuePtr& pid) {
    if (pid->kind != Value::Kind::tuple || pid->items.size() < 5 || pid->items[0]->s != "storage")
      fail("a persistent id that is not a tensor storage");
    const auto& type = pid->items[1];
    const c10::ScalarType dtype = type->kind == Value::Kind::global ? storage_dtype(type->global.name) : c10::ScalarType::Undefined;
    if (dtype == c10::ScalarType::Undefined) fail("storage type '" + (type->kind == Value::Kind::global ? type->global.name : std::string("?")) + "' is not supported");
    const std::string key = pid->items[2]->s;
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    const std::string record = "data/" + key;
    if (!zip_.hasRecord(record)) fail("the archive has no record '" + record + "'");
    auto [ptr, size] = zip_.getRecord(record);
    const std::int64_t numel = static_cast<std::int64_t>(size / c10::elementSize(dtype));
    auto v = make(Value::Kind::storage_ref);
    v->tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    std::memcpy(v->tensor.data_ptr(), ptr.get(), numel * c10::elementSize(dtype));
    storages_[key] = v;
    stored_ += numel;
    return v;
  }

  /// A tensor's declared view must lie inside its storage: checked with
  /// overflow-safe arithmetic before anything is allocated or read.
  void check_extent(const std::vector<std::int64_t>& size, const std::vector<std::int64_t>& stride, std::int64_t offset,
                    std::int64_t numel) {
    if (size.size() != stride.size()) fail("a tensor with " + std::to_string(size.size()) + " sizes but " +
                                           std::to_string(stride.size()) + " strides");
    if (offset < 0) fail("a tensor with a negative storage offset");
    std::int64_t last = offset;  // the highest element index the view reads
    bool empty = false;
    for (std::size_t k = 0; k < size.size(); ++k) {
      if (size[k] < 0 || stride[k] < 0) fail("a tensor with a negative size or stride");
      if (size[k] == 0) empty = true;
      std::int64_t step = 0;
      if (size[k] > 0 && (__builtin_mul_overflow(size[k] - 1, stride[k], &step) || __builtin_add_overflow(last, step, &last)))
        fail("a tensor whose declared size overflows");
    }
    if (!empty && last >= numel)
      fail("a tensor that declares " + std::to_string(last + 1) + " elements of storage but its record holds " + std::to_string(numel));
    // A view with more elements than its storage repeats elements (a zero or
    // overlapping stride). A state dict stores each weight once, and cloning
    // such a view could turn a tiny file into gigabytes.
    std::int64_t elements = empty ? 0 : 1;
    for (std::size_t k = 0; k < size.size() && !empty; ++k)
      if (__builtin_mul_overflow(elements, size[k], &elements) || elements > numel)
        fail("a tensor view of more elements than its storage record holds (" + std::to_string(numel) +
             "): its strides repeat elements, which a state dict never needs");
    // Many tensors may view one storage (tied or split weights), but a small
    // file naming the same storage over and over must not multiply memory.
    materialised_ += elements;
    if (materialised_ > kViewBudget * stored_ + (std::int64_t{1} << 20))
      fail("tensors that view the same storage records more than " + std::to_string(kViewBudget) +
           " times over; a state dict stores each weight once");
  }

  ValuePtr reduce(const ValuePtr& fn, const ValuePtr& args) {
    if (fn->kind != Value::Kind::global) fail("REDUCE of something that is not a global");
    const std::string name = fn->global.module + "." + fn->global.name;
    if (name == "collections.OrderedDict") return make(Value::Kind::dict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      const auto& a = args->items;
      if (a.size() < 4 || a[0]->kind != Value::Kind::storage_ref) fail("a tensor without its storage");
      std::vector<std::int64_t> size, stride;
      for (const auto& x : a[2]->items) size.push_back(x->i);
      for (const auto& x : a[3]->items) stride.push_back(x->i);
      check_extent(size, stride, a[1]->i, a[0]->tensor.numel());
      auto v = make(Value::Kind::tensor);
      v->tensor = a[0]->tensor.as_strided(size, stride, a[1]->i).clone();
      return v;
    }
    // libtorch's own pickler (what `umrflow weights export` writes) tags a dict
    // with its key and value types: restore_type_tag(obj, "Dict[str, Tensor]") is obj.
    if (name == "torch.jit._pickle.restore_type_tag") {
      if (args->items.empty()) fail("restore_type_tag without its object");
      return args->items[0];
    }
    if (name == "torch._utils._rebuild_parameter") {
      if (args->items.empty() || args->items[0]->kind != Value::Kind::tensor) fail("a parameter without its tensor");
      return args->items[0];
    }
    fail("it calls '" + name + "', which a state dict does not need");
  }

  std::string file_;
  caffe2::serialize::PyTorchStreamReader& zip_;
  const std::vector<char>* data_ = nullptr;
  std::size_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::map<std::uint32_t, ValuePtr> memo_;
  std::map<std::string, ValuePtr> storages_;
  static constexpr std::int64_t kViewBudget = 16;
  std::int64_t stored_ = 0;        // elements in the distinct storage records read
  std::int64_t materialised_ = 0;  // elements in the tensors built from them
};

std::string strip_prefixes(std::string key) {
  for (bool again = true; again;) {
    again = false;
    for (const char* p : {"module.", "backbone."})
      if (key.rfind(p, 0) == 0) {
        key = key.substr(std::strlen(p));
        again = true;
      }
  }
  return key;
}

}  // namespace

NamedTensors read_state_dict(const std::string& path) {
  if (!std::filesystem::exists(path)) throw std::runtime_error("'" + path + "' does not exist");
  const auto not_a_zip = [&] {
    return std::runtime_error("'" + path + "' is not a torch.save zip archive (saved with _use_new_zipfile_serialization=False, "
                              "or not a PyTorch file); re-save it with torch >= 1.6 defaults");
  };
  // Checked before libtorch's reader sees the file: that reader does not
  // compare the records' CRC-32 and allocates whatever size a record declares.
  try {
    check_zip_archive(path);
  } catch (const std::runtime_error&) {
    if (!starts_like_zip(path)) throw not_a_zip();
    throw;
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception&) {
    throw not_a_zip();
  }
  if (!zip->hasRecord("data.pkl")) throw std::runtime_error("'" + path + "' has no data.pkl: it is not a torch.save file");
  auto [ptr, size] = zip->getRecord("data.pkl");
  std::vector<char> data(static_cast<const char*>(ptr.get()), static_cast<const char*>(ptr.get()) + size);
  Unpickler unpickler(path, *zip);
  ValuePtr root = unpickler.run(data);
  for (int depth = 0; depth < 3 && root->kind == Value::Kind::dict; ++depth) {
    ValuePtr nested;
    for (const auto& [k, v] : root->entries)
      if (k->kind == Value::Kind::text && (k->s == "state_dict" || k->s == "model" || k->s == "net") && v->kind == Value::Kind::dict)
        nested = v;
    if (!nested) break;
    root = nested;
  }
  if (root->kind != Value::Kind::dict) throw std::runtime_error("'" + path + "' holds no dict of tensors at its top");
  NamedTensors out;
  for (const auto& [k, v] : root->entries) {
    if (k->kind != Value::Kind::text) throw std::runtime_error("'" + path + "': a key that is not a string");
    if (v->kind != Value::Kind::tensor) continue;  // epoch counters, optimizer entries beside the weights
    out.emplace_back(strip_prefixes(k->s), v->tensor);
  }
  if (out.empty()) throw std::runtime_error("'" + path + "' holds no tensors");
  return out;
}

}  // namespace umrflow::io
