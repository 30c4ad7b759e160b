// umrflow: command-line entry point. Every subcommand is a verb in the
// registry (umrflow/verb.h): the engine's, the node families', the plugins'.
#include <malloc.h>

#include <csignal>
#include <cstdlib>
#include <limits>
#include <string>

#include <CLI/CLI.hpp>

#include "common.h"
#include "umrflow/plugin.h"
#include "umrflow_version.h"
#include "verbs.h"

namespace {

/// Keeps freed memory in the process for reuse. The data plane and the CPU
/// step allocate and free blocks of tens of MiB per sample; by default glibc
/// maps each from the kernel and unmaps it when freed, so every new block
/// page-faults again (on the development VM that made a 128^3 crop cost 5
/// times more). One heap (no per-thread arenas, whose 64 MiB heaps cannot
/// hold such blocks), no mmap per block, no trimming. The process keeps its
/// peak size. UMRFLOW_MALLOC=system leaves glibc's defaults.
void keep_freed_memory() {
  const char* choice = std::getenv("UMRFLOW_MALLOC");
  if (choice && std::string(choice) == "system") return;
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  // `umrflow run ... | head`: once the reader is gone, writes to the pipe fail
  // (EPIPE) instead of killing the run, which goes on into its log.txt and
  // checkpoints.
  std::signal(SIGPIPE, SIG_IGN);
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
