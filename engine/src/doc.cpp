#include "umrflow/doc.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <set>
#include <sstream>

namespace umrflow {

namespace fs = std::filesystem;

Doc Doc::scalar(std::string text, Location where) {
  Doc d;
  d.kind_ = Kind::scalar;
  d.text_ = std::move(text);
  d.where_ = std::move(where);
  return d;
}
Doc Doc::sequence(Location where) {
  Doc d;
  d.kind_ = Kind::sequence;
  d.where_ = std::move(where);
  return d;
}
Doc Doc::map(Location where) {
  Doc d;
  d.kind_ = Kind::map;
  d.where_ = std::move(where);
  return d;
}

const char* Doc::kind_name() const {
  switch (kind_) {
    case Kind::null: return "null";
    case Kind::scalar: return "scalar";
    case Kind::sequence: return "sequence";
    case Kind::map: return "map";
  }
  return "?";
}

const std::vector<Doc::Entry>& Doc::entries() const { return entries_; }
std::vector<Doc::Entry>& Doc::entries() { return entries_; }

const Doc::Entry* Doc::find_entry(const std::string& key) const {
  for (const auto& e : entries_)
    if (e.key == key) return &e;
  return nullptr;
}
const Doc* Doc::find(const std::string& key) const {
  const Entry* e = find_entry(key);
  return e ? &e->value : nullptr;
}
Doc* Doc::find(const std::string& key) { return const_cast<Doc*>(static_cast<const Doc*>(this)->find(key)); }

Doc& Doc::set(const std::string& key, Doc value, Location key_where) {
  if (kind_ != Kind::map) {
    *this = Doc::map(where_);
  }
  for (auto& e : entries_)
    if (e.key == key) {
      e.value = std::move(value);
      return e.value;
    }
  entries_.push_back(Entry{key, std::move(key_where), std::move(value)});
  return entries_.back().value;
}

bool Doc::erase(const std::string& key) {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key; });
  if (it == entries_.end()) return false;
  entries_.erase(it);
  return true;
}

std::vector<std::string> Doc::keys() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.key);
  return out;
}

namespace {

Location at(const YAML::Mark& m, const std::string& file) { return {file, m.line + 1, m.column + 1}; }

/// Limits of the conversion: YAML aliases share nodes, so a short text can
/// name a cycle (`&a [*a]`) or expand exponentially (an alias bomb); both are
/// stopped here, before the stack or the memory runs out.
constexpr int kMaxDepth = 64;
constexpr std::int64_t kMaxValues = 1000000;

struct Converter {
  const std::string& file;
  Diagnostics& diags;
  std::int64_t values = 0;

  [[noreturn]] void fail(const Location& where, const std::string& message) {
    diags.error(where, message);
    diags.throw_if_any();
    std::abort();  // unreachable: throw_if_any throws after an error
  }

  Doc convert(const YAML::Node& node, int depth) {
    Location where = at(node.Mark(), file);
    if (depth > kMaxDepth)
      fail(where, "nested deeper than " + std::to_string(kMaxDepth) + " levels (an alias that contains itself, like `&a [*a]`?)");
    if (++values > kMaxValues)
      fail(where, "the document expands to more than " + std::to_string(kMaxValues) +
                      " values (aliases that repeat aliases?); write the values out or split the file");
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined: {
        Doc d;
        d.set_where(where);
        return d;
      }
      case YAML::NodeType::Scalar: {
        Doc d = Doc::scalar(node.Scalar(), where);
        d.set_quoted(node.Tag() == "!");
        return d;
      }
      case YAML::NodeType::Sequence: {
        Doc d = Doc::sequence(where);
        for (const auto& item : node) d.push(convert(item, depth + 1));
        return d;
      }
      case YAML::NodeType::Map: {
        Doc d = Doc::map(where);
        for (auto it = node.begin(); it != node.end(); ++it) {
          Location key_where = at(it->first.Mark(), file);
          if (!it->first.IsScalar()) {
            diags.error(key_where, "a map key must be a plain name");
            continue;
          }
          const std::string key = it->first.Scalar();
          if (const Doc::Entry* prev = d.find_entry(key)) {
            diags.error(key_where, "duplicate key '" + key + "' (first at " + prev->key_where.str() + ")");
            continue;
          }
          d.set(key, convert(it->second, depth + 1), key_where);
        }
        return d;
      }
    }
    return Doc();
  }
};

bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  if (s.find_first_of(":#{}[],&*!|>'\"%@`\n") != std::string::npos) return true;
  if (s.front() == ' ' || s.back() == ' ' || s.front() == '-' || s.front() == '?') return true;
  return false;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string scalar_text(const Doc& d) {
  if (d.is_null()) return "null";
  return (d.quoted() || needs_quotes(d.text())) ? quote(d.text()) : d.text();
}

bool is_flat(const Doc& d) {
  if (!d.is_sequence() || d.items().size() > 16) return false;
  return std::all_of(d.items().begin(), d.items().end(), [](const Doc& i) { return i.is_scalar() || i.is_null(); });
}

void emit(const Doc& d, int indent, std::ostringstream& out);

std::string flow(const Doc& d) {
  std::string s = "[";
  for (std::size_t i = 0; i < d.items().size(); ++i) s += (i ? ", " : "") + scalar_text(d.items()[i]);
  return s + "]";
}

void emit_value_after_key(const Doc& v, int indent, std::ostringstream& out) {
  if (v.is_map() && !v.entries().empty()) {
    out << "\n";
    emit(v, indent + 2, out);
  } else if (v.is_sequence() && !v.items().empty() && !is_flat(v)) {
    out << "\n";
    emit(v, indent, out);
  } else if (v.is_map()) {
    out << " {}\n";
  } else if (v.is_sequence()) {
    out << " " << flow(v) << "\n";
  } else {
    out << " " << scalar_text(v) << "\n";
  }
}

void emit(const Doc& d, int indent, std::ostringstream& out) {
  const std::string pad(indent, ' ');
  if (d.is_map()) {
    for (const auto& e : d.entries()) {
      out << pad << (needs_quotes(e.key) ? quote(e.key) : e.key) << ":";
      emit_value_after_key(e.value, indent, out);
    }
  } else if (d.is_sequence()) {
    for (const auto& item : d.items()) {
      if (item.is_map() && !item.entries().empty()) {
        std::ostringstream inner;
        emit(item, indent + 2, inner);
        std::string s = inner.str();
        out << pad << "- " << s.substr(indent + 2);
      } else if (item.is_sequence() && !is_flat(item)) {
        out << pad << "-\n";
        emit(item, indent + 2, out);
      } else {
        out << pad << "- " << (item.is_sequence() ? flow(item) : item.is_map() ? "{}" : scalar_text(item)) << "\n";
      }
    }
  } else {
    out << pad << scalar_text(d) << "\n";
  }
}

bool is_id_list(const Doc& d) {
  if (!d.is_sequence() || d.items().empty()) return false;
  return std::all_of(d.items().begin(), d.items().end(), [](const Doc& i) {
    const Doc* id = i.is_map() ? i.find("id") : nullptr;
    return id && id->is_scalar();
  });
}

Doc* find_by_id(Doc& seq, const std::string& id) {
  for (auto& item : seq.items()) {
    const Doc* v = item.is_map() ? item.find("id") : nullptr;
    if (v && v->is_scalar() && v->text() == id) return &item;
  }
  return nullptr;
}

Doc load_recursive(const fs::path& path, std::vector<fs::path>& stack, const Location& included_from) {
  fs::path canonical = fs::weakly_canonical(path);
  if (std::find(stack.begin(), stack.end(), canonical) != stack.end()) {
    Diagnostics d;
    d.error(included_from, "include cycle: '" + path.string() + "' includes itself (through " +
                               stack.back().filename().string() + ")");
    d.throw_if_any();
  }
  if (!fs::exists(path)) {
    Diagnostics d;
    d.error(included_from, "cannot open '" + path.string() + "': no such file");
    d.throw_if_any();
  }
  Doc doc = load_yaml_file(path.string());
  const Doc* inc = doc.is_map() ? doc.find("include") : nullptr;
  if (!inc) return doc;
  std::vector<const Doc*> files;
  Diagnostics diags;
  if (inc->is_scalar()) files.push_back(inc);
  else if (inc->is_sequence())
    for (const auto& i : inc->items()) {
      if (i.is_scalar()) files.push_back(&i);
      else diags.error(i.where(), "include: expected a file name, got a " + std::string(i.kind_name()));
    }
  else diags.error(inc->where(), "include: expected a file name or a list of file names");
  diags.throw_if_any();

  stack.push_back(canonical);
  Doc base = Doc::map(doc.where());
  for (const Doc* f : files) {
    fs::path p = f->text();
    if (p.is_relative()) p = path.parent_path() / p;
    merge_doc(base, load_recursive(p, stack, f->where()));
  }
  stack.pop_back();
  doc.erase("include");
  merge_doc(base, doc);
  return base;
}

}  // namespace

Doc parse_yaml(const std::string& text, const std::string& file) {
  Diagnostics diags;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    diags.error(at(e.mark, file), "YAML syntax: " + e.msg);
    diags.throw_if_any();
  }
  Doc doc = Converter{file, diags}.convert(root, 0);
  diags.throw_if_any();
  return doc;
}

Doc load_yaml_file(const std::string& path) {
  // Graphs, splits and sweeps are small text files: a device (/dev/zero),
  // FIFO or folder, or a file of more than 16 MiB, is refused before it is
  // read into memory.
  constexpr std::uintmax_t kMaxBytes = std::uintmax_t{16} << 20;
  std::error_code ec;
  const bool regular = std::filesystem::is_regular_file(path, ec);
  if (std::filesystem::exists(path, ec) && (!regular || std::filesystem::file_size(path, ec) > kMaxBytes)) {
    Diagnostics d;
    d.error({path, 0, 0}, regular ? "larger than 16 MiB: not a YAML file umrflow reads (graphs, splits, sweeps are small text files)"
                                  : "not a regular file (a folder, device or FIFO); umrflow reads YAML from text files");
    d.throw_if_any();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    Diagnostics d;
    d.error({path, 0, 0}, "cannot open file (check the path; graph files are YAML)");
    d.throw_if_any();
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_yaml(ss.str(), path);
}

std::string to_yaml(const Doc& doc) {
  std::ostringstream out;
  emit(doc, 0, out);
  return out.str();
}

void merge_doc(Doc& base, const Doc& over) {
  if (base.is_map() && over.is_map()) {
    for (const auto& e : over.entries()) {
      Doc* existing = base.find(e.key);
      if (existing) merge_doc(*existing, e.value);
      else base.set(e.key, e.value, e.key_where);
    }
    return;
  }
  if (is_id_list(base) && is_id_list(over)) {
    for (const auto& item : over.items()) {
      Doc* existing = find_by_id(base, item.find("id")->text());
      if (existing) merge_doc(*existing, item);
      else base.push(item);
    }
    return;
  }
  base = over;
}

namespace {
const std::string kOverridePrefix = "<--set ";
}  // namespace

std::string base_folder(const Location& where) {
  if (where.file.rfind(kOverridePrefix, 0) == 0) return "";
  return fs::path(where.file).parent_path().string();
}

void apply_override(Doc& root, const std::string& assignment, Diagnostics& diags) {
  const std::string file = kOverridePrefix + assignment + ">";
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    diags.error({file, 1, 1}, "expected PATH=VALUE, for example train.epochs=3");
    return;
  }
  const std::string path = assignment.substr(0, eq);
  Doc value;
  try {
    value = parse_yaml(assignment.substr(eq + 1), file);
  } catch (const GraphError& e) {
    for (const auto& d : e.diagnostics().items())
      diags.error({file, 1, static_cast<int>(eq) + 1 + d.where.column}, d.message);
    return;
  }
  const Location value_where{file, 1, static_cast<int>(eq) + 2};
  // Re-anchor every location in the value to the override text.
  std::function<void(Doc&)> relocate = [&](Doc& d) {
    d.set_where(value_where);
    for (auto& i : d.items()) relocate(i);
    for (auto& e : d.entries()) {
      e.key_where = value_where;
      relocate(e.value);
    }
  };
  relocate(value);
  if (value.is_null() && assignment.size() == eq + 1) value = Doc::scalar("", value_where);

  if (!root.is_map()) root = Doc::map(root.where());
  Doc* cur = &root;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    const std::string seg = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const Location seg_where{file, 1, static_cast<int>(start) + 1};
    const bool last = dot == std::string::npos;
    if (seg.empty()) {
      diags.error(seg_where, "empty path segment in '" + path + "'");
      return;
    }
    Doc* next = nullptr;
    if (cur->is_sequence()) {
      next = find_by_id(*cur, seg);
      if (!next && seg.size() <= 9 && std::all_of(seg.begin(), seg.end(), ::isdigit)) {
        const std::size_t i = std::stoul(seg);
        if (i < cur->items().size()) next = &cur->items()[i];
      }
      if (!next) {
        std::vector<std::string> ids;
        for (auto& item : cur->items())
          if (const Doc* id = item.is_map() ? item.find("id") : nullptr) ids.push_back(id->text());
        diags.error(seg_where, "no item with id '" + seg + "' in '" + path.substr(0, start ? start - 1 : 0) + "'" +
                                   did_you_mean(seg, ids));
        return;
      }
      if (last) {
        *next = value;
        return;
      }
    } else {
      if (!cur->is_map()) {
        if (!cur->is_null()) {
          diags.error(seg_where, "cannot set '" + seg + "' inside a " + cur->kind_name() + " (" + cur->where().str() + ")");
          return;
        }
        *cur = Doc::map(value_where);
      }
      if (last) {
        // `path=null` (or `~`) removes the key, e.g. a parameter the swapped-in type lacks.
        if (value.is_null()) cur->erase(seg);
        else cur->set(seg, value, seg_where);
        return;
      }
      next = cur->find(seg);
      if (!next) next = &cur->set(seg, Doc::map(value_where), seg_where);
    }
    cur = next;
    start = dot + 1;
  }
}

Doc load_graph_doc(const std::string& path, const std::vector<std::string>& overrides) {
  std::vector<fs::path> stack;
  Doc doc = load_recursive(path, stack, {path, 0, 0});
  Diagnostics diags;
  for (const auto& o : overrides) apply_override(doc, o, diags);
  diags.throw_if_any();
  return doc;
}

}  // namespace umrflow
