// umrflow/doc.h: graph documents as trees that remember where each value came from.
//
// A graph file is YAML. yaml-cpp parses it, and the parse is turned into a Doc:
// a tree of scalars, sequences and maps in which every value and every map key
// keeps its Location (file, line, column). Includes, `--set` overrides and
// validation all work on Docs, so an error found after merging three files still
// points to the line that caused it.
//
// Merging rules (used by `include:`):
//   * map into map: key by key, recursively; the including file wins;
//   * a sequence of maps that all have an `id` into another such sequence: items
//     with the same id are merged, new ids are appended in order;
//   * anything else: the including file's value replaces the included one.
//
// Override paths (`--set a.b.c=value`) walk maps by key, sequences of maps by
// `id` (or by numeric index), and create missing map keys. The value is parsed
// as YAML, so `--set train.epochs=3` gives an integer scalar and
// `--set data.crop.size=[64,64,64]` a sequence.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "umrflow/diagnostics.h"

namespace umrflow {

class Doc {
 public:
  enum class Kind { null, scalar, sequence, map };

  struct Entry;  // a key with its location and value

  Doc() = default;
  static Doc scalar(std::string text, Location where = {});
  static Doc sequence(Location where = {});
  static Doc map(Location where = {});

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_scalar() const { return kind_ == Kind::scalar; }
  bool is_sequence() const { return kind_ == Kind::sequence; }
  bool is_map() const { return kind_ == Kind::map; }
  const Location& where() const { return where_; }
  void set_where(Location where) { where_ = std::move(where); }
  /// "scalar", "sequence", "map" or "null", for messages.
  const char* kind_name() const;

  // scalars
  const std::string& text() const { return text_; }
  /// True when the scalar was written in quotes (so `"3"` stays a string).
  bool quoted() const { return quoted_; }
  void set_quoted(bool q) { quoted_ = q; }

  // sequences
  const std::vector<Doc>& items() const { return items_; }
  std::vector<Doc>& items() { return items_; }
  void push(Doc item) { items_.push_back(std::move(item)); }

  // maps (entries keep file order)
  const std::vector<Entry>& entries() const;
  std::vector<Entry>& entries();
  /// The value at `key`, or nullptr.
  const Doc* find(const std::string& key) const;
  Doc* find(const std::string& key);
  /// The entry for `key`, or nullptr (gives the key's own location).
  const Entry* find_entry(const std::string& key) const;
  /// Sets `key`, replacing an existing value in place or appending.
  Doc& set(const std::string& key, Doc value, Location key_where = {});
  bool erase(const std::string& key);
  std::vector<std::string> keys() const;

 private:
  Kind kind_ = Kind::null;
  Location where_;
  std::string text_;
  bool quoted_ = false;
  std::vector<Doc> items_;
  std::vector<Entry> entries_;
};

struct Doc::Entry {
  std::string key;
  Location key_where;
  Doc value;
};

/// Parses YAML text; `file` names it in locations. Syntax errors throw GraphError.
Doc parse_yaml(const std::string& text, const std::string& file);
/// Reads and parses a file. A missing or unreadable file throws GraphError.
Doc load_yaml_file(const std::string& path);
/// Writes a Doc back as block-style YAML (for the resolved graph in a run directory).
std::string to_yaml(const Doc& doc);

/// Merges `over` into `base` by the rules above.
void merge_doc(Doc& base, const Doc& over);

/// Applies one `path=value` assignment. Problems are appended to `diagnostics`
/// at a location named `<--set PATH=VALUE>` with the column of the offending
/// character. Relative paths in the value resolve against the working
/// directory (base_folder).
void apply_override(Doc& root, const std::string& assignment, Diagnostics& diagnostics);

/// The folder against which a relative path written at `where` resolves: the
/// folder of the file that holds it, or "" (the working directory) for a value
/// given on the command line with --set.
std::string base_folder(const Location& where);

/// Loads a graph file: resolves its `include:` list (paths relative to the
/// including file, recursively, include cycles reported), merges, then applies
/// the overrides in order. The `include` key is removed from the result.
Doc load_graph_doc(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace umrflow
