// common.h: what the subcommands share: building the registry with plugins and
// loading a graph with its overrides.
#pragma once

#include <string>
#include <vector>

#include "umrflow/graph.h"
#include "umrflow/registry.h"

namespace umrflow::cli {

/// Built-in nodes, then the plugins named on the command line and in
/// UMRFLOW_PLUGIN_PATH (files, or folders whose lib*.so are all loaded).
void load_command_line_plugins(Registry& registry, const std::vector<std::string>& cli_plugins);

/// Loads the command line's plugins, then `path` with `overrides` and
/// everything its run uses (load_graph in graph.h). Throws GraphError or
/// std::runtime_error.
Graph load_and_validate(const std::string& path, const std::vector<std::string>& overrides,
                        const std::vector<std::string>& cli_plugins, Registry& registry, const LoadChecks& checks = {});

/// Runs a sweep file (see docs/graph-yaml.md, "Sweeps"): every variant is
/// validated, then those named in `only` (all when empty) run. `overrides`
/// apply after the sweep's and the variant's own. Returns the exit code.
int run_sweep(const std::string& sweep_file, const std::vector<std::string>& overrides,
              const std::vector<std::string>& cli_plugins, const std::string& out_dir, int threads, bool quiet,
              const std::vector<std::string>& only = {});

/// `umrflow weights export|import|list` (weights.cpp). Return the exit code.
int weights_export(const std::string& checkpoint, const std::string& out, std::string module);
int weights_import(const std::string& state_dict, const std::string& out, const std::string& module);
int weights_list(const std::string& file);

/// `umrflow verify FILE...` (verify.cpp): reads each checkpoint, state dict or
/// cache whole, checks CRC-32s / chunk checksums and finiteness, prints one line
/// a file. Returns 0 when all are intact, else 1.
int verify_files(const std::vector<std::string>& files);

/// Writes a Doc as a one-line YAML flow value, for turning a map entry back
/// into a `path=value` override.
std::string flow_text(const Doc& doc);

}  // namespace umrflow::cli
