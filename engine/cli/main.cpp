// umrflow: command-line entry point.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "brats/brats.h"
#include "io/h5cache.h"
#include "io/split.h"
#include "builtin.h"
#include "common.h"
#include "umrflow/describe.h"
#include "umrflow/plugin.h"
#include "umrflow/run.h"

namespace fs = std::filesystem;

namespace umrflow::cli {

void load_command_line_plugins(Registry& registry, const std::vector<std::string>& cli_plugins) {
  for (const auto& p : cli_plugins) load_plugin(p, registry);
  for (const auto& entry : plugin_paths_from_environment()) {
    if (fs::is_directory(entry)) {
      std::vector<std::string> libs;
      for (const auto& f : fs::directory_iterator(entry))
        if (f.path().extension() == ".so" && f.path().filename().string().rfind("lib", 0) == 0) libs.push_back(f.path().string());
      std::sort(libs.begin(), libs.end());
      for (const auto& l : libs) load_plugin(l, registry);
    } else {
      load_plugin(entry, registry);
    }
  }
}

Graph load_and_validate(const std::string& path, const std::vector<std::string>& overrides,
                        const std::vector<std::string>& cli_plugins, Registry& registry, const LoadChecks& checks) {
  load_command_line_plugins(registry, cli_plugins);
  return load_graph(path, overrides, registry, checks);
}

}  // namespace umrflow::cli

namespace {

int report(const std::exception& e) {
  std::string msg = e.what();
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  if (dynamic_cast<const umrflow::GraphError*>(&e)) {
    const auto& g = static_cast<const umrflow::GraphError&>(e);
    std::fprintf(stderr, "%s\n%zu error%s; nothing was run.\n", msg.c_str(), g.diagnostics().size(),
                 g.diagnostics().size() == 1 ? "" : "s");
  } else {
    std::fprintf(stderr, "error: %s\n", msg.c_str());
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace umrflow;
  CLI::App app{
      "umrflow: train and evaluate multi-modal segmentation networks described as YAML graphs of nodes.\n"
      "A graph's data plane (loading, augmentation) runs in parallel on the CPU; its step plane\n"
      "(modules, losses, optimizer) runs serially on the device. See docs/graph-yaml.md."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("umrflow ") + "0.1.0, " + describe_abi(host_abi()));

  std::vector<std::string> plugins, sets;
  auto add_plugin_opt = [&](CLI::App* c) {
    c->add_option("--plugin", plugins, "shared library with more node types (repeatable; also UMRFLOW_PLUGIN_PATH)");
  };
  auto add_set_opt = [&](CLI::App* c) {
    c->add_option("--set", sets,
                  "override PATH=VALUE before validation, e.g. train.epochs=3 or data.noise.std=0.2 (repeatable)");
  };

  std::string graph_path, out_dir, node_type, output, resume_dir;
  std::vector<std::string> sweep_only;
  int threads = -1;
  bool quiet = false, markdown = false;

  CLI::App* run = app.add_subcommand("run", "validate a graph, then run it into a run directory");
  run->add_option("graph", graph_path, "graph file (YAML)")->required()->check(CLI::ExistingFile);
  add_set_opt(run);
  add_plugin_opt(run);
  run->add_option("--out", out_dir, "run directory (default runs/<name>; an existing non-empty one gets a .N suffix)");
  run->add_option("--threads", threads, "data-plane worker threads (default: execution.threads; 0 = all cores)")->check(CLI::Range(0, 1024));
  run->add_flag("--quiet", quiet, "no progress bar or progress lines on stderr (log.txt keeps them); epoch summaries still print");
  run->add_option("--resume", resume_dir,
                  "continue a stopped run in its directory from its last.pt (weights, optimizer, schedule, epoch); "
                  "give the same graph and --set options");
  run->footer(
      "Exit status: 0 done, 1 invalid graph or failed node, 128 + the signal when stopped by SIGINT (130), SIGTERM (143), "
      "SIGHUP (129) or SIGUSR1 (138): the step finishes and interrupted.pt is written first.");

  CLI::App* validate = app.add_subcommand("validate", "check graphs completely without reading any data");
  std::vector<std::string> validate_graphs;
  validate->add_option("graphs", validate_graphs,
                       "graph files (YAML); several are checked as the stages of one pipeline, in order: an init.from "
                       "that an earlier one writes (runs/<name>/last.pt, best.pt, epoch_NNNN.pt) counts as present")
      ->required()->check(CLI::ExistingFile);
  add_set_opt(validate);
  add_plugin_opt(validate);
  validate->footer("Builds every graph a run uses (validation graphs, plugins) and checks init.from files and the "
                   "validation metric. Prints every problem as file:line:column: message and exits 1 if there is any.");

  CLI::App* nodes = app.add_subcommand("nodes", "list the registered node types with parameters and ports");
  nodes->add_option("type", node_type, "show only this type");
  nodes->add_flag("--markdown", markdown, "write the Markdown reference (docs/nodes.md)");
  add_plugin_opt(nodes);

  CLI::App* dot = app.add_subcommand("dot", "write the graph as Graphviz (dot -Tsvg to draw it)");
  dot->add_option("graph", graph_path, "graph file (YAML)")->required()->check(CLI::ExistingFile);
  dot->add_option("-o,--output", output, "file to write (default: standard output)");
  add_set_opt(dot);
  add_plugin_opt(dot);

  CLI::App* sweep = app.add_subcommand("sweep", "run the variants of a sweep file and tabulate their final metrics");
  sweep->add_option("sweep", graph_path, "sweep file (YAML: base, variants)")->required()->check(CLI::ExistingFile);
  add_set_opt(sweep);
  add_plugin_opt(sweep);
  sweep->add_option("--out", out_dir, "folder for the variants' run directories and the table (default runs/<sweep name>)");
  sweep->add_option("--threads", threads, "data-plane worker threads")->check(CLI::Range(0, 1024));
  sweep->add_flag("--quiet", quiet, "no progress bar or progress lines on stderr (each run's log.txt keeps them)");
  sweep->add_option("--only", sweep_only, "run only these variants (all are still validated)")->delimiter(',');
  sweep->footer("Writes sweep.md and sweep.csv: one row per variant, one column per final metric.");

  CLI::App* synth = app.add_subcommand("synth", "write synthetic data sets");
  synth->require_subcommand(1);
  brats::PhantomOptions phantom;
  CLI::App* synth_brats = synth->add_subcommand(
      "brats", "BraTS-layout phantom cases: brain anatomy, a tumour with core, rim and oedema, four MRI contrasts");
  synth_brats->add_option("--cases", phantom.cases, "number of cases")->check(CLI::Range(1, 100000));
  synth_brats->add_option("--size", phantom.size, "X and Y size in voxels; Z is size*155/240")->check(CLI::Range(16, 512));
  synth_brats->add_option("--seed", phantom.seed, "seed; the same seed writes the same cases");
  synth_brats->add_option("--out", phantom.out, "folder to write the case folders into")->required();
  synth_brats->add_option("--template", phantom.template_path,
                          "brain template (default: mricron-data's ch2bet.nii.gz; a procedural head when absent)");
  synth_brats->add_flag("--procedural", phantom.procedural, "use the procedural head even when the template is installed");

  CLI::App* convert = app.add_subcommand("convert", "convert a data set into a cache file");
  convert->require_subcommand(1);
  std::string convert_src, convert_out;
  std::vector<std::string> convert_modalities = brats::default_modalities(), convert_regions = {"TC", "WT", "ET"};
  CLI::App* convert_brats = convert->add_subcommand(
      "brats", "BraTS NIfTI folders -> one HDF5 file: each case cropped to its brain box, chunked, compressed");
  convert_brats->add_option("--src", convert_src, "folder holding the case folders")->required()->check(CLI::ExistingDirectory);
  convert_brats->add_option("--out", convert_out, "the .h5 file to write (written whole, then renamed into place)")->required();
  convert_brats->add_option("--modalities", convert_modalities, "modality file suffixes in channel order")->delimiter(',');
  convert_brats->add_option("--regions", convert_regions, "label region channels (TC, WT, ET, NCR, ED)")->delimiter(',');
  convert_brats->footer("The layout is documented in docs/datasets.md; read the file with the node brats.h5.");

  CLI::App* split = app.add_subcommand("split", "write a seeded train/val/test split of a data set's case ids");
  std::string split_from, split_out;
  double split_val = 0.05, split_test = 0.10;
  std::uint64_t split_seed = 2025;
  split->add_option("--from", split_from, "case folders (BraTS layout), a cache .h5, or a text file of ids (one per line)")
      ->required()->check(CLI::ExistingPath);
  split->add_option("--val", split_val, "fraction of cases for validation")->check(CLI::Range(0.0, 1.0));
  split->add_option("--test", split_test, "fraction of cases for testing")->check(CLI::Range(0.0, 1.0));
  split->add_option("--seed", split_seed, "the same seed and ids give the same split");
  split->add_option("--out", split_out, "split file to write (YAML), e.g. datasets/brats2020/split.yaml")->required();

  CLI::App* bench = app.add_subcommand("bench", "time a graph at several data-plane thread counts (samples per second)");
  std::vector<int> bench_threads = {1, 2};
  int bench_repeat = 3;
  bench->add_option("graph", graph_path, "graph file (YAML)")->required()->check(CLI::ExistingFile);
  bench->add_option("--threads", bench_threads, "thread counts to compare")->delimiter(',');
  bench->add_option("--repeat", bench_repeat, "runs per thread count; the median is reported")->check(CLI::Range(1, 100));
  add_set_opt(bench);
  add_plugin_opt(bench);
  bench->footer("Each run is one full epoch of the graph into a temporary folder; prints a Markdown table.");

  CLI::App* weights = app.add_subcommand("weights", "move weights between run checkpoints and PyTorch state dicts");
  weights->require_subcommand(1);
  std::string w_in, w_out, w_module;
  CLI::App* w_export = weights->add_subcommand("export", "write a run checkpoint's modules as one PyTorch state dict (the authors' key names)");
  w_export->add_option("checkpoint", w_in, "run checkpoint (last.pt, epoch_NNNN.pt)")->required()->check(CLI::ExistingFile);
  w_export->add_option("out", w_out, "file to write; Python: sd = torch.load(out); model.load_state_dict(sd)")->required();
  w_export->add_option("--module", w_module, "module ids, comma-separated (default: every module, merged in checkpoint order; a name held twice is an error)");
  CLI::App* w_import = weights->add_subcommand("import", "turn a PyTorch state dict into a checkpoint for `init: {from: ...}`");
  w_import->add_option("state_dict", w_in,
                       "file saved by torch.save(model.state_dict(), f): an OrderedDict or dict, possibly under "
                       "'state_dict', with 'module.' or 'backbone.' prefixes (stripped)")
      ->required()->check(CLI::ExistingFile);
  w_import->add_option("out", w_out, "checkpoint to write")->required();
  w_import->add_option("--module", w_module, "module id the weights belong to in the graph")->required();
  CLI::App* w_list = weights->add_subcommand("list", "print the tensors of a checkpoint or state dict: key, shape, dtype");
  w_list->add_option("file", w_in, "run checkpoint or PyTorch state dict")->required()->check(CLI::ExistingFile);

  CLI::App* verify = app.add_subcommand("verify", "check checkpoints, state dicts and caches for damage (CRC-32, checksums, NaN)");
  std::vector<std::string> verify_files;
  verify->add_option("files", verify_files, "run checkpoints (*.pt), PyTorch state dicts, or HDF5 caches (*.h5)")
      ->required()->check(CLI::ExistingFile);
  verify->footer("Prints one line a file: ok with what was checked, or DAMAGED with the first problem. Exit status 1 if any is damaged.");

  CLI11_PARSE(app, argc, argv);

  try {
    if (*nodes) {
      Registry registry;
      register_builtin_nodes(registry);
      cli::load_command_line_plugins(registry, plugins);
      if (!node_type.empty() && !registry.find(node_type)) {
        std::fprintf(stderr, "error: no node type '%s'%s\n", node_type.c_str(), did_you_mean(node_type, registry.types()).c_str());
        return 1;
      }
      std::cout << (markdown ? describe_nodes_markdown(registry) : describe_nodes_text(registry, node_type));
      return 0;
    }
    if (*synth_brats) {
      const bool with_template =
          !phantom.procedural && (!phantom.template_path.empty() || fs::exists(brats::default_template_path()));
      std::fprintf(stderr, "writing %lld phantom case(s) of %lldx%lldx%lld into %s (%s anatomy)\n",
                   static_cast<long long>(phantom.cases), static_cast<long long>(phantom.size),
                   static_cast<long long>(phantom.size), static_cast<long long>(std::max<std::int64_t>(8, phantom.size * 155 / 240)),
                   phantom.out.c_str(), with_template ? "template" : "procedural");
      brats::write_phantoms(phantom, [](std::int64_t i, std::int64_t n) {
        std::fprintf(stderr, "\r  case %lld/%lld", static_cast<long long>(i), static_cast<long long>(n));
        if (i == n) std::fprintf(stderr, "\n");
      });
      return 0;
    }
    if (*convert_brats) {
      std::fprintf(stderr, "converting %s into %s\n", convert_src.c_str(), convert_out.c_str());
      brats::convert_to_cache(convert_src, convert_out, convert_modalities, convert_regions, [](std::int64_t i, std::int64_t n) {
        std::fprintf(stderr, "\r  case %lld/%lld", static_cast<long long>(i), static_cast<long long>(n));
        if (i == n) std::fprintf(stderr, "\n");
      });
      return 0;
    }
    if (*split) {
      std::vector<std::string> ids;
      if (fs::is_directory(split_from)) {
        for (const auto& c : brats::discover_cases(split_from, brats::default_modalities())) ids.push_back(c.id);
      } else if (fs::path(split_from).extension() == ".h5") {
        for (const auto& c : io::CacheReader(split_from).cases()) ids.push_back(c.id);
      } else {
        std::ifstream in(split_from);
        for (std::string line; std::getline(in, line);)
          if (!line.empty() && line[0] != '#') ids.push_back(line);
      }
      if (ids.empty()) throw std::runtime_error("no case ids found in '" + split_from + "'");
      const io::Split s = io::make_split(ids, split_val, split_test, split_seed);
      io::write_split(split_out, s,
                      "umrflow split: " + std::to_string(ids.size()) + " cases, seed " + std::to_string(split_seed) + ", " +
                          std::to_string(s.subsets.at("train").size()) + " train / " + std::to_string(s.subsets.at("val").size()) +
                          " val / " + std::to_string(s.subsets.at("test").size()) + " test");
      std::printf("%s: %zu train, %zu val, %zu test\n", split_out.c_str(), s.subsets.at("train").size(),
                  s.subsets.at("val").size(), s.subsets.at("test").size());
      return 0;
    }
    if (*w_export) return cli::weights_export(w_in, w_out, w_module);
    if (*w_import) return cli::weights_import(w_in, w_out, w_module);
    if (*w_list) return cli::weights_list(w_in);
    if (*verify) return cli::verify_files(verify_files);
    if (*sweep) return cli::run_sweep(graph_path, sets, plugins, out_dir, threads, quiet, sweep_only);

    Registry registry;
    register_builtin_nodes(registry);
    if (*validate) {
      LoadChecks checks;
      int code = 0;
      for (const auto& path : validate_graphs) {
        try {
          const Graph g = cli::load_and_validate(path, sets, plugins, registry, checks);
          std::printf("%s: valid (%zu modules, %zu data nodes, %zu step nodes%s)\n", path.c_str(), g.modules.size(), g.data.size(),
                      g.step.size(), g.validation ? ", validation graph too" : "");
          const auto written = checkpoints_written(g);
          checks.produced.insert(written.begin(), written.end());
        } catch (const GraphError& e) {
          code = report(e);
        }
      }
      return code;
    }
    LoadChecks checks;
    checks.init_exists = !*dot && !*bench;
    Graph graph = cli::load_and_validate(graph_path, sets, plugins, registry, checks);
    if (*bench) {
      std::printf("| threads | samples/s (median of %d) | runs |\n|---|---|---|\n", bench_repeat);
      const fs::path tmp = fs::temp_directory_path() / ("umrflow_bench_" + std::to_string(::getpid()));
      for (int t : bench_threads) {
        std::vector<double> rates;
        for (int r = 0; r < bench_repeat; ++r) {
          RunOptions o;
          o.run_dir = (tmp / (std::to_string(t) + "_" + std::to_string(r))).string();
          o.threads = t;
          o.quiet = true;
          rates.push_back(run_graph(graph, registry, o).final_metrics.at("samples_per_s"));
        }
        std::sort(rates.begin(), rates.end());
        std::string runs;
        for (double v : rates) runs += (runs.empty() ? "" : ", ") + std::to_string(v).substr(0, 6);
        std::printf("| %d | %.2f | %s |\n", t, rates[rates.size() / 2], runs.c_str());
      }
      fs::remove_all(tmp);
      return 0;
    }
    if (*dot) {
      const std::string text = graph_to_dot(graph);
      if (output.empty()) std::cout << text;
      else std::ofstream(output) << text;
      return 0;
    }
    RunOptions options;
    options.run_dir = out_dir;
    options.resume = resume_dir;
    options.threads = threads;
    options.quiet = quiet;
    install_interrupt_handler();
    RunSummary s = run_graph(graph, registry, options);
    if (s.interrupted) {
      std::fprintf(stderr, "interrupted; run directory %s\n", s.run_dir.c_str());
      return interrupted_exit_code();
    }
    return 0;
  } catch (const std::exception& e) {
    return report(e);
  }
}
