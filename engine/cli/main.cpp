// umrflow: command-line entry point. Every subcommand is a verb in the
// registry (umrflow/verb.h): the engine's, the node families', the plugins'.
#include <CLI/CLI.hpp>

#include "common.h"
#include "umrflow/plugin.h"
#include "umrflow_version.h"
#include "verbs.h"

int main(int argc, char** argv) {
  using namespace umrflow;
  Registry registry;
  cli::register_run_verb(registry);
  cli::register_validate_verb(registry);
  cli::register_nodes_verb(registry);
  cli::register_dot_verb(registry);
  cli::register_sweep_verb(registry);
  cli::register_bench_verb(registry);
  cli::register_plot_verb(registry);
  register_builtin_nodes(registry);
  try {
    cli::load_command_line_plugins(registry, cli::plugins_in_arguments(argc, argv));  // plugins may add verbs
  } catch (const std::exception& e) {
    return cli::report(e);
  }

  CLI::App app{
      "umrflow: train and evaluate multi-modal segmentation networks described as YAML graphs of nodes.\n"
      "A graph's data plane (loading, augmentation) runs in parallel on the CPU; its step plane\n"
      "(modules, losses, optimizer) runs serially on the device. See docs/graph-yaml.md."};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", std::string("umrflow ") + UMRFLOW_VERSION + ", " + describe_abi(host_abi()));
  std::vector<std::string> plugins;  // loaded above; declared here for --help and parsing
  app.add_option("--plugin", plugins,
                 "shared library with more node types and verbs (repeatable, anywhere on the line; also UMRFLOW_PLUGIN_PATH)");
  cli::VerbCommands verbs(app, registry);
  CLI11_PARSE(app, argc, argv);
  try {
    return verbs.run();
  } catch (const std::exception& e) {
    return cli::report(e);
  }
}
