// `umrflow validate`: check graphs, and everything their runs use, without reading data.
#include <cstdio>

#include "common.h"

namespace umrflow::cli {

void register_validate_verb(Registry& registry) {
  VerbSpec v;
  v.path = {"validate"};
  v.summary = "check graphs completely without reading any data";
  v.options = {
      param::texts("graphs", std::nullopt,
                   "graph files (YAML); several are checked as the stages of one pipeline, in order: an init.from that an "
                   "earlier one writes (runs/<name>/last.pt, best.pt, epoch_NNNN.pt) counts as present"),
      set_option(),
  };
  v.positional = {"graphs"};
  v.existing_files = {"graphs"};
  v.footer =
      "Builds every graph a run uses (validation graphs, plugins) and checks the validation metric and the init.from files "
      "(present, or written by an earlier graph given; one that exists is read whole: torch archive, CRC-32 of each record, "
      "its run's checksums.sha256). "
      "Prints every problem as file:line:column: message and exits 1 if there is any.";
  v.run = [](const VerbCall& c) {
    LoadChecks checks;
    checks.init_intact = true;
    int code = 0;
    for (const auto& path : c.options.get_texts("graphs")) {
      try {
        const Graph g = load_and_validate(path, c.options.get_texts("set"), c.registry, checks);
        std::printf("%s: valid (%zu modules, %zu data nodes, %zu step nodes%s)\n", path.c_str(), g.modules.size(), g.data.size(),
                    g.step.size(), g.validation ? ", and its validation graph" : "");
        const auto written = checkpoints_written(g);
        checks.produced.insert(written.begin(), written.end());
      } catch (const GraphError& e) {
        code = report(e);
      }
    }
    return code;
  };
  registry.add_verb(std::move(v));
}

}  // namespace umrflow::cli
