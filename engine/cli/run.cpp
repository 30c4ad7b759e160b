// `umrflow run`: validate a graph, then run it into a run directory.
#include <cstdio>

#include "common.h"
#include "umrflow/run.h"

namespace umrflow::cli {

void register_run_verb(Registry& registry) {
  VerbSpec v;
  v.path = {"run"};
  v.summary = "validate a graph, then run it into a run directory";
  v.options = {
      param::text("graph", std::nullopt, "graph file (YAML)"),
      set_option(),
      param::text("out", "", "run directory (default runs/<name>; an existing non-empty one gets a .N suffix)"),
      param::integer("threads", -1, "data-plane worker threads (-1: execution.threads; 0: automatic, as execution.threads 0)").range(-1, 1024),
      param::boolean("quiet", false, "no progress bar or progress lines on stderr (log.txt keeps them); epoch summaries still print"),
      param::text("resume", "",
                  "continue a stopped run in its directory from its last.pt (weights, optimizer, schedule, epoch); "
                  "give the same graph and --set options"),
  };
  v.positional = {"graph"};
  v.existing_files = {"graph"};
  v.footer =
      "Exit status: 0 done, 1 invalid graph or failed node, 128 + the signal when stopped by SIGINT (130), SIGTERM (143), "
      "SIGHUP (129) or SIGUSR1 (138): the step finishes and interrupted.pt is written first.";
  v.run = [](const VerbCall& c) {
    const Params& o = c.options;
    const Graph graph = load_and_validate(o.get_text("graph"), o.get_texts("set"), c.registry);
    RunOptions options;
    options.run_dir = o.get_text("out");
    options.resume = o.get_text("resume");
    options.threads = static_cast<int>(o.get_int("threads"));
    options.quiet = o.get_bool("quiet");
    install_interrupt_handler();
    const RunSummary s = run_graph(graph, c.registry, options);
    if (!s.interrupted) return 0;
    std::fprintf(stderr, "interrupted; run directory %s\n", s.run_dir.c_str());
    return interrupted_exit_code();
  };
  registry.add_verb(std::move(v));
}

}  // namespace umrflow::cli
