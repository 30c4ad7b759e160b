// umrflow/registry.h: node type name -> declaration and factory.
//
// There is no global registry. The host creates one Registry, fills it with the
// built-in library (register_builtin_nodes) and with plugins, each of which
// receives the host's registry through its entry point (plugin.h). Looking up a
// name that is not there is an ordinary answer (nullptr), and the validator turns
// it into an error that lists the nearest registered names.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "umrflow/node_spec.h"
#include "umrflow/verb.h"

namespace umrflow {

class Registry {
 public:
  /// Adds a node type. Throws std::invalid_argument when the name is already
  /// registered (naming both origins) or the spec is malformed (no name, no
  /// factory, a variadic port that is not last, a default outside its range).
  void add(NodeSpec spec);

  /// The spec for `type`, or nullptr.
  const NodeSpec* find(const std::string& type) const;
  /// Registered names, sorted.
  std::vector<std::string> types() const;
  /// Where a type came from: "built-in" or the plugin's path.
  std::string origin(const std::string& type) const;

  /// Adds a subcommand (verb.h). Throws std::invalid_argument when its path is
  /// taken (naming both origins) or the spec is malformed (no path, no run
  /// function, a positional or comma list that names no option).
  void add_verb(VerbSpec verb);
  /// Every verb, in the order added.
  const std::vector<VerbSpec>& verbs() const { return verbs_; }
  /// Where the verb at `verbs()[i]` came from: "built-in" or a plugin's path.
  const std::string& verb_origin(std::size_t i) const { return verb_origins_.at(i); }

  /// Origin recorded for types added from now on (set by the plugin loader).
  void set_origin(std::string origin) { current_origin_ = std::move(origin); }

 private:
  std::map<std::string, NodeSpec> specs_;
  std::map<std::string, std::string> origins_;
  std::vector<VerbSpec> verbs_;
  std::vector<std::string> verb_origins_;
  std::string current_origin_ = "built-in";
};

/// Registers the engine's own node types: `batch` and `call`.
void register_engine_nodes(Registry& registry);

}  // namespace umrflow
