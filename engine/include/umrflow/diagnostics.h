// umrflow/diagnostics.h: where something is wrong, and how errors travel.
//
// Every error that a user can cause carries a Location (file, 1-based line and
// column) and is printed as `file:line:column: message`, the form compilers use,
// so editors and terminals can jump to it. Validation collects all problems of a
// graph into one Diagnostics list before anything runs; GraphError carries that
// list out of the loader. Errors that happen while a graph runs are NodeError:
// they name the node and the sample that failed.
//
// This header has no dependency on torch, TBB or yaml-cpp.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace umrflow {

/// A place in a graph file. line and column are 1-based; 0 means "unknown".
struct Location {
  std::string file;
  int line = 0;
  int column = 0;

  /// `file:line:column`, or just `file` when line is unknown.
  std::string str() const;
};

/// One problem at one place.
struct Diagnostic {
  Location where;
  std::string message;

  /// `file:line:column: message`.
  std::string str() const;
};

/// An ordered list of problems; validation appends to it and never stops early.
class Diagnostics {
 public:
  void error(const Location& where, std::string message);
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  /// All diagnostics, one per line.
  std::string str() const;
  /// Throws GraphError when the list is not empty.
  void throw_if_any() const;

 private:
  std::vector<Diagnostic> items_;
};

/// Thrown when a graph file (or one of its includes or overrides) is invalid.
/// what() is the full list, one diagnostic per line.
class GraphError : public std::runtime_error {
 public:
  explicit GraphError(Diagnostics diagnostics);
  const Diagnostics& diagnostics() const { return diagnostics_; }

 private:
  Diagnostics diagnostics_;
};

/// An error message as a user should read it: libtorch's C++ backtrace
/// ("Exception raised from ..." or "frame #0: ..." lines) cut off, and a hint
/// appended when memory ran out (an allocation the machine cannot give).
std::string readable_error(const std::string& message);

/// Thrown by the scheduler when a node fails while the graph runs. what() reads
/// `node 'ID' (TYPE) failed on sample SAMPLE: REASON`, REASON made readable
/// (readable_error).
class NodeError : public std::runtime_error {
 public:
  NodeError(std::string node_id, std::string node_type, std::string sample, std::string reason);
  const std::string& node_id() const { return node_id_; }
  const std::string& sample() const { return sample_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string node_id_, sample_, reason_;
};

/// Up to `limit` names from `candidates` closest to `name` by edit distance,
/// nearest first; names too far away to be a plausible typo are left out.
std::vector<std::string> nearest_names(const std::string& name, const std::vector<std::string>& candidates,
                                       std::size_t limit = 3);

/// " (did you mean 'a', 'b'?)" or "" when there is no plausible suggestion.
std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace umrflow
