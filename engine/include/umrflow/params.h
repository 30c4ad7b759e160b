// umrflow/params.h: node parameters, declared once.
//
// A node type declares each of its parameters exactly once, as a ParamSpec:
// name, type, default, allowed range or choices, and a one-line description.
// That one declaration drives everything else:
//   * parsing a node's YAML map into typed values (parse_params),
//   * the errors for unknown keys (with the nearest valid names), wrong types,
//     values out of range and missing required parameters, each with its
//     file:line:column,
//   * the `umrflow nodes` listing and the generated docs/nodes.md.
//
//   spec.params = {
//       param::number("std", 0.1, "standard deviation of the added noise").min(0.0),
//       param::integers("size", {64, 64, 64}, "crop size per spatial axis").length(3).min(1),
//       param::choice("mode", "zeros", {"zeros", "copy"}, "how a missing channel is filled"),
//   };
//
// This header has no dependency on torch.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "umrflow/diagnostics.h"

namespace umrflow {

class Doc;

enum class ParamType { boolean, integer, number, text, choice, integers, numbers, texts };

/// "bool", "int", "float", "string", "choice", "list of int", ...
const char* param_type_name(ParamType type);

using ParamValue = std::variant<bool, std::int64_t, double, std::string, std::vector<std::int64_t>,
                                std::vector<double>, std::vector<std::string>>;

/// Renders a value the way it would be written in YAML (`0.1`, `[64, 64, 64]`).
std::string format_param_value(const ParamValue& value);

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::number;
  std::optional<ParamValue> default_value;  // empty: the parameter is required
  std::optional<double> minimum, maximum;   // for numbers and for each list element
  std::optional<std::size_t> list_length;   // exact length for list types
  std::vector<std::string> choices;         // for ParamType::choice
  std::string description;

  // Fluent refinements, for declarations that read as one sentence.
  ParamSpec& min(double v) { minimum = v; return *this; }
  ParamSpec& max(double v) { maximum = v; return *this; }
  ParamSpec& range(double lo, double hi) { minimum = lo; maximum = hi; return *this; }
  ParamSpec& length(std::size_t n) { list_length = n; return *this; }

  bool required() const { return !default_value.has_value(); }
  /// "float in [0, 1]", "int >= 1", "one of zeros|copy", "list of 3 int >= 1".
  std::string constraint_text() const;
};

/// Builders for ParamSpec; an absent default makes the parameter required.
namespace param {
ParamSpec boolean(std::string name, bool def, std::string description);
ParamSpec integer(std::string name, std::optional<std::int64_t> def, std::string description);
ParamSpec number(std::string name, std::optional<double> def, std::string description);
ParamSpec text(std::string name, std::optional<std::string> def, std::string description);
ParamSpec choice(std::string name, std::string def, std::vector<std::string> options, std::string description);
ParamSpec integers(std::string name, std::optional<std::vector<std::int64_t>> def, std::string description);
ParamSpec numbers(std::string name, std::optional<std::vector<double>> def, std::string description);
ParamSpec texts(std::string name, std::optional<std::vector<std::string>> def, std::string description);
}  // namespace param

/// Parsed, typed parameter values of one node, defaults filled in.
class Params {
 public:
  /// Typed access; throws std::logic_error when the node asks for a name or type
  /// it did not declare (a programming error, not a user error).
  bool get_bool(const std::string& name) const;
  std::int64_t get_int(const std::string& name) const;
  double get_number(const std::string& name) const;  // ints are widened
  const std::string& get_text(const std::string& name) const;  // text and choice
  const std::vector<std::int64_t>& get_ints(const std::string& name) const;
  std::vector<double> get_numbers(const std::string& name) const;  // int lists are widened
  const std::vector<std::string>& get_texts(const std::string& name) const;

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const ParamValue& value(const std::string& name) const;
  /// Where the value was written (the node's own location for defaults).
  const Location& where(const std::string& name) const;

  void set(const std::string& name, ParamValue value, Location where);
  const std::map<std::string, ParamValue>& values() const { return values_; }

 private:
  std::map<std::string, ParamValue> values_;
  std::map<std::string, Location> where_;
};

/// Parses the parameters of a node map. Keys in `reserved` (id, type, in, ...)
/// are skipped; every other key must be declared in `specs`. All problems are
/// appended to `diagnostics`; the returned Params hold what could be parsed.
/// `owner` names the node in messages ("node 'crop' (volume.random_crop)").
Params parse_params(const Doc& node_map, const std::vector<ParamSpec>& specs,
                    const std::vector<std::string>& reserved, const std::string& owner,
                    Diagnostics& diagnostics);

}  // namespace umrflow
