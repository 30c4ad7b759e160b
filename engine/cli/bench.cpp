// `umrflow bench`: one graph's throughput at several data-plane thread counts.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>

#include "common.h"
#include "umrflow/files.h"
#include "umrflow/run.h"

namespace fs = std::filesystem;

namespace umrflow::cli {

void register_bench_verb(Registry& registry) {
  VerbSpec v;
  v.path = {"bench"};
  v.summary = "time a graph at several data-plane thread counts (samples per second)";
  v.options = {param::text("graph", std::nullopt, "graph file (YAML)"),
               param::integers("threads", std::vector<std::int64_t>{1, 2}, "thread counts to compare").range(0, 1024),
               param::integer("repeat", 3, "runs per thread count; the median is reported").range(1, 100),
               param::integer("passes", 1,
                              "epochs per run of a graph that does not train, timed by the last one (2 or more: memory caches are "
                              "warm); a training graph runs its train.epochs (--set train.epochs=N)")
                   .range(1, 100),
               param::integer("profile", 0,
                               "also print the N ops (and step nodes, backward, optimizer step) with the most time of their own "
                               "in the timed epoch of each thread count's last run, per step (the profiled run is slower, most for ops "
                               "called many thousand times: compare step times of unprofiled runs); 0: no profile")
                   .range(0, 1000),
               set_option()};
  v.positional = {"graph"};
  v.existing_files = {"graph"};
  v.comma_lists = {"threads"};
  v.footer =
      "Each run is --passes full epochs of the graph (train.epochs for a training graph) into a temporary folder, timed by the "
      "last; prints a Markdown table: "
      "samples per second over that epoch, and the median time of one step in it (the median over the runs). "
      "Ctrl-C or SIGTERM stops after the current step: the rows printed and the profiles of their thread counts stand, the temporary folder is removed, exit 128 + the signal.";
  v.run = [](const VerbCall& c) {
    LoadChecks checks;
    checks.init_exists = false;  // timing needs no trained weights
    const Graph graph = load_and_validate(c.options.get_text("graph"), c.options.get_texts("set"), c.registry, checks);
    const auto repeat = c.options.get_int("repeat");
    const auto profile = c.options.get_int("profile");
    struct Profiled {
      std::int64_t threads, steps;
      std::vector<OpProfile::Row> rows;
    };
    std::vector<Profiled> profiles;
    const auto print_profiles = [&] {  // of the thread counts finished
      for (const auto& p : profiles) {
        std::printf("\nProfile, threads %lld: the timed epoch of the last run, %lld step(s); ms per step; self: less the ops it "
                    "called; total: with them\n\n%s",
                    static_cast<long long>(p.threads), static_cast<long long>(p.steps),
                    op_profile_table(p.rows, static_cast<std::size_t>(profile), p.steps).c_str());
      }
      std::fflush(stdout);
    };
    std::printf("| threads | samples/s (median of %lld) | runs | step s (median) |\n|---|---|---|---|\n", static_cast<long long>(repeat));
    std::fflush(stdout);
    // Ctrl-C (or SIGTERM from a time limit) stops the run after its current
    // step; the rows printed so far stand and the scratch folder goes.
    std::atomic<bool>& stop = install_interrupt_handler();
    const ScratchFolder scratch("umrflow_bench_");  // removed at the end, also when a run fails
    const fs::path tmp = scratch.path();
    for (const auto t : c.options.get_ints("threads")) {
      std::vector<double> rates, steps;
      std::vector<OpProfile::Row> profiled;
      std::int64_t profiled_steps = 0;
      for (std::int64_t r = 0; r < repeat; ++r) {
        RunOptions o;
        o.run_dir = (tmp / (std::to_string(t) + "_" + std::to_string(r))).string();
        o.threads = static_cast<int>(t);
        o.quiet = true;
        o.passes = c.options.get_int("passes");
        o.profile_last_epoch = profile > 0 && r + 1 == repeat;
        const RunSummary summary = run_graph(graph, c.registry, o);
        if (summary.interrupted || stop.load()) {
          std::fprintf(stderr, "interrupted: the rows above are complete; threads %lld was not finished\n", static_cast<long long>(t));
          print_profiles();
          return interrupted_exit_code();
        }
        const auto& metrics = summary.final_metrics;
        if (o.profile_last_epoch) {
          profiled = summary.profile;
          profiled_steps = summary.profile_steps;
        }
        rates.push_back(metrics.at("samples_per_s"));
        steps.push_back(metrics.at("step_median_s"));
      }
      std::sort(rates.begin(), rates.end());
      std::sort(steps.begin(), steps.end());
      std::string runs;
      for (double x : rates) runs += (runs.empty() ? "" : ", ") + std::to_string(x).substr(0, 6);
      std::printf("| %lld | %.2f | %s | %.4f |\n", static_cast<long long>(t), rates[rates.size() / 2], runs.c_str(), steps[steps.size() / 2]);
      std::fflush(stdout);  // a row measured is kept even if a time limit kills what follows
      if (profile > 0) profiles.push_back({t, profiled_steps, std::move(profiled)});
    }
    print_profiles();
    return 0;
  };
  registry.add_verb(std::move(v));
}

}  // namespace umrflow::cli
