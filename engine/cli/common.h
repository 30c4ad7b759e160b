// common.h: what the engine's verbs share. Each verb lives in its own file
// and registers itself like any other (umrflow/verb.h); main.cpp is the list.
#pragma once

#include <string>
#include <vector>

#include "umrflow/graph.h"
#include "umrflow/params.h"
#include "umrflow/registry.h"

namespace umrflow {
/// Node types and their families' verbs: the built-in library that the
/// `umrflow` executable links (nodes/builtin.cpp). The engine never includes it.
void register_builtin_nodes(Registry& registry);
}  // namespace umrflow

namespace umrflow::cli {

// The engine's verbs, one file each.
void register_run_verb(Registry& registry);       // run.cpp
void register_validate_verb(Registry& registry);  // validate.cpp
void register_nodes_verb(Registry& registry);     // nodes.cpp
void register_dot_verb(Registry& registry);       // dot.cpp
void register_sweep_verb(Registry& registry);     // sweep.cpp
void register_bench_verb(Registry& registry);     // bench.cpp
void register_plot_verb(Registry& registry);      // plot.cpp

/// The plugins named on the command line (--plugin, read before parsing) and
/// in UMRFLOW_PLUGIN_PATH (files, or folders whose lib*.so are all loaded).
void load_command_line_plugins(Registry& registry, const std::vector<std::string>& cli_plugins);

/// `--set PATH=VALUE`, repeatable, as the graph verbs declare it.
ParamSpec set_option();

/// Loads `path` with `overrides` and everything its run uses (load_graph in
/// graph.h). Throws GraphError or std::runtime_error.
Graph load_and_validate(const std::string& path, const std::vector<std::string>& overrides, Registry& registry,
                        const LoadChecks& checks = {});

/// Prints an error the way every verb reports one; returns exit status 1.
int report(const std::exception& e);

/// Writes a Doc as a one-line YAML flow value, for turning a map entry back
/// into a `path=value` override.
std::string flow_text(const Doc& doc);

}  // namespace umrflow::cli
