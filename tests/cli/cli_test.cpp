#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include "test_paths.h"
#include "test_util.h"

namespace umrflow {

namespace fs = std::filesystem;
using test::run_command;

namespace {
const std::string kBin = UMRFLOW_BINARY;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string kGraph = R"(umrflow: 1
name: cli
seed: 2
modules:
  net: {type: model.channel_mix, in_channels: 2}
data:
  - {id: source, type: synthetic.tensors, count: 16, shape: [2, 4, 4, 4]}
  - {id: noise, type: tensor.gaussian_noise, in: source, std: 0.1}
  - {id: batch, type: batch, in: noise, size: 4}
step:
  - {id: pred, type: call, module: net, in: batch.image}
  - {id: mse, type: loss.mse, in: [pred, batch.target]}
train: {epochs: 2, objective: mse, optimizer: {type: adam, lr: 0.05}}
)";
}  // namespace

// Every subcommand answers --help with what it does and exits 0.
TEST(Cli, HelpForEverySubcommand) {
  std::string out;
  ASSERT_EQ(run_command(kBin + " --help", &out), 0);
  for (const char* sub : {"run", "validate", "nodes", "dot", "sweep"}) EXPECT_NE(out.find(sub), std::string::npos) << sub;
  ASSERT_EQ(run_command(kBin + " run --help", &out), 0);
  EXPECT_NE(out.find("--set"), std::string::npos);
  EXPECT_NE(out.find("Exit status"), std::string::npos);
  for (const char* sub : {"validate", "nodes", "dot", "sweep", "plot"}) EXPECT_EQ(run_command(kBin + " " + sub + " --help", &out), 0) << sub;
  EXPECT_NE(run_command(kBin, &out), 0);
}

// validate prints every error as file:line:column and exits 1; a valid graph exits 0.
TEST(Cli, ValidateReportsAllErrors) {
  test::TempDir dir;
  std::string bad = kGraph;
  bad.replace(bad.find("std: 0.1"), 8, "std: -1");
  bad.replace(bad.find("seed: 2"), 7, "sede: 2");
  const std::string path = dir.write("bad.yaml", bad);
  std::string out;
  EXPECT_EQ(run_command(kBin + " validate " + path, &out), 1);
  auto [l1, c1] = test::position_of(bad, "-1");
  auto [l2, c2] = test::position_of(bad, "sede");
  EXPECT_NE(out.find(path + ":" + std::to_string(l1) + ":" + std::to_string(c1) + ":"), std::string::npos) << out;
  EXPECT_NE(out.find(path + ":" + std::to_string(l2) + ":" + std::to_string(c2) + ":"), std::string::npos) << out;
  EXPECT_NE(out.find("2 errors; nothing was run."), std::string::npos) << out;
  const std::string good = dir.write("good.yaml", kGraph);
  EXPECT_EQ(run_command(kBin + " validate " + good, &out), 0) << out;
  // The same graph is made invalid by an override, and `run` validates first.
  EXPECT_EQ(run_command(kBin + " run " + good + " --quiet --out " + dir.path() + "/r --set data.noise.std=-3", &out), 1);
  EXPECT_NE(out.find("<--set data.noise.std=-3>:1:16:"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir.path() + "/r"));
}

// validate reads an init.from that exists whole, as a run would before
// loading it: a damaged record, a checkpoint whose digest is not the one its
// run's checksums.sha256 lists, a PyTorch state dict, a folder and a text
// file are errors at the init.from line (they passed; the run failed later).
TEST(Cli, ValidateReadsInitFromWhole) {
  test::TempDir dir;
  const std::string g = dir.write("g.yaml", kGraph), d = dir.path();
  std::string out;
  ASSERT_EQ(run_command(kBin + " run " + g + " --quiet --set train.checkpoint.every=1 --out " + d + "/run 2>&1", &out), 0) << out;
  const auto validate_from = [&](const std::string& from) { return run_command(kBin + " validate " + g + " --set modules.net.init.from=" + from + " 2>&1", &out); };
  EXPECT_EQ(validate_from(d + "/run/last.pt"), 0) << out;
  fs::copy_file(d + "/run/last.pt", d + "/copy.pt");
  EXPECT_EQ(validate_from(d + "/copy.pt"), 0) << out;  // no ledger beside it: its records are still checked
  std::string bytes = read(d + "/copy.pt");
  // The first byte of tensor record data/0: after its local header, name and extra field.
  const std::size_t header = bytes.rfind("PK\x03\x04", bytes.find("data/0"));
  ASSERT_NE(header, std::string::npos);
  const auto u16 = [&](std::size_t k) { return static_cast<std::size_t>(static_cast<unsigned char>(bytes[k])) | static_cast<std::size_t>(static_cast<unsigned char>(bytes[k + 1])) << 8; };
  const std::size_t at = header + 30 + u16(header + 26) + u16(header + 28);
  ASSERT_LT(at, bytes.size());
  bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
  std::ofstream(d + "/copy.pt", std::ios::binary | std::ios::trunc) << bytes;
  EXPECT_EQ(validate_from(d + "/copy.pt"), 1) << out;
  EXPECT_NE(out.find("module 'net': init.from:"), std::string::npos) << out;
  EXPECT_NE(out.find("copy.pt"), std::string::npos) << out;
  fs::copy_file(d + "/run/epoch_0001.pt", d + "/run/last.pt", fs::copy_options::overwrite_existing);
  EXPECT_EQ(validate_from(d + "/run/last.pt"), 1) << out;
  EXPECT_NE(out.find("checksums.sha256"), std::string::npos) << out;
  EXPECT_EQ(validate_from(d + "/run"), 1) << out;
  EXPECT_NE(out.find("is a folder, not a checkpoint file"), std::string::npos) << out;
  EXPECT_EQ(validate_from(g), 1) << out;
  EXPECT_NE(out.find("is not a torch archive"), std::string::npos) << out;
  ASSERT_EQ(run_command(kBin + " weights export " + d + "/run/epoch_0002.pt " + d + "/sd.pt 2>&1", &out), 0) << out;
  EXPECT_EQ(validate_from(d + "/sd.pt"), 1) << out;
  EXPECT_NE(out.find("looks like a PyTorch state dict (torch.save); convert it with `umrflow weights import " + d + "/sd.pt OUT.pt --module net`"),
            std::string::npos) << out;
}

// run trains into the requested directory and honours --set.
TEST(Cli, RunWithOverrides) {
  test::TempDir dir;
  const std::string good = dir.write("g.yaml", kGraph);
  std::string out;
  ASSERT_EQ(run_command(kBin + " run " + good + " --quiet --threads 2 --out " + dir.path() + "/r --set train.epochs=3", &out), 0) << out;
  std::ifstream m(dir.path() + "/r/metrics.jsonl");
  int lines = 0;
  for (std::string l; std::getline(m, l);) lines += !l.empty();
  EXPECT_EQ(lines, 3);
  EXPECT_NE(read(dir.path() + "/r/graph.yaml").find("epochs: 3"), std::string::npos);
}

// plot draws two runs on the same axes (one line per run in every panel),
// a folder without metrics.jsonl is an error naming it, and a cut line is
// left out with a warning.
TEST(Cli, PlotDrawsRunsTogether) {
  test::TempDir dir;
  const std::string good = dir.write("g.yaml", kGraph);
  std::string out;
  for (const char* lr : {"0.05", "0.01"})
    ASSERT_EQ(run_command(kBin + " run " + good + " --quiet --out " + dir.path() + "/lr" + lr + " --set train.optimizer.lr=" + lr, &out), 0)
        << out;
  ASSERT_EQ(run_command(kBin + " plot " + dir.path() + "/lr0.05 " + dir.path() + "/lr0.01 -o " + dir.path() + "/both.svg", &out), 0)
      << out;
  const std::string svg = read(dir.path() + "/both.svg");
  EXPECT_NE(svg.find(">lr0.05</text>"), std::string::npos);
  EXPECT_NE(svg.find(">lr0.01</text>"), std::string::npos);
  int lines = 0;
  for (std::size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++lines;
  EXPECT_EQ(lines % 2, 0);
  EXPECT_GE(lines, 2 * 4);  // mse, lr, samples_per_s, time_s, ... for both runs
  EXPECT_EQ(run_command(kBin + " plot " + dir.path() + " -o " + dir.path() + "/x.svg", &out), 1);
  EXPECT_NE(out.find("has no metrics.jsonl"), std::string::npos) << out;
  // A line cut short (a run killed while appending) is left out with a warning naming the file and line.
  { std::ofstream(dir.path() + "/lr0.01/metrics.jsonl", std::ios::app) << "{\"epoch\": 3, \"mse\": 0."; }
  ASSERT_EQ(run_command(kBin + " plot " + dir.path() + "/lr0.01 -o " + dir.path() + "/cut.svg", &out), 0) << out;
  EXPECT_NE(out.find("lr0.01/metrics.jsonl' line 3 is not a whole record"), std::string::npos) << out;
}

// SIGINT, SIGTERM, SIGHUP and SIGUSR1 each stop after the current step, write
// interrupted.pt and exit with 128 + the signal; a second signal while
// stopping is answered with a message, not a kill.
TEST(Cli, SignalsStopWithCheckpoint) {
  test::TempDir dir;
  std::string long_graph = kGraph;
  long_graph.replace(long_graph.find("epochs: 2"), 9, "epochs: 100000");
  const std::string g = dir.write("g.yaml", long_graph);
  for (const auto& [signal, code, twice] : std::vector<std::tuple<std::string, int, bool>>{
           {"INT", 130, false}, {"TERM", 143, false}, {"HUP", 129, false}, {"USR1", 138, false}, {"TERM", 143, true}}) {
    const std::string run_dir = dir.path() + "/r" + signal + (twice ? "2" : "");
    // Start the run, wait until its second epoch is logged (last.pt exists), then signal it (twice: again at once).
    const std::string script = dir.write("signal.sh", kBin + " run " + g + " --quiet --out " + run_dir + " &\n" +
                                         "pid=$!\nfor i in $(seq 600); do\n  grep -q 'epoch 2/' " + run_dir +
                                         "/log.txt 2>/dev/null && break\n  sleep 0.1\ndone\n"
                                         "kill -" + signal + " $pid\n" + (twice ? "kill -" + signal + " $pid\n" : "") +
                                         "wait $pid\necho \"exit=$?\"\n");
    std::string out;
    run_command("sh " + script, &out);
    EXPECT_NE(out.find("exit=" + std::to_string(code)), std::string::npos) << signal << ": " << out;
    EXPECT_TRUE(fs::exists(run_dir + "/last.pt")) << signal << ": " << out;
    EXPECT_TRUE(fs::exists(run_dir + "/interrupted.pt")) << signal << ": " << out;
    EXPECT_NE(read(run_dir + "/log.txt").find("interrupted"), std::string::npos) << signal;
  }
}

// nodes lists parameters; its Markdown form is exactly docs/nodes.md.
TEST(Cli, NodesListingMatchesDocs) {
  std::string out;
  ASSERT_EQ(run_command(kBin + " nodes tensor.gaussian_noise", &out), 0);
  EXPECT_NE(out.find("std: float >= 0 = 0.1"), std::string::npos) << out;
  EXPECT_EQ(run_command(kBin + " nodes tensor.gausian_noise", &out), 1);
  EXPECT_NE(out.find("did you mean 'tensor.gaussian_noise'"), std::string::npos) << out;
  ASSERT_EQ(run_command(kBin + " nodes --markdown 2>/dev/null", &out), 0);
  EXPECT_EQ(out, read(std::string(UMRFLOW_SOURCE_DIR) + "/docs/nodes.md"))
      << "docs/nodes.md is stale: regenerate it with `build/umrflow nodes --markdown > docs/nodes.md`";
  ASSERT_EQ(run_command(kBin + " nodes --plugin " + UMRFLOW_CUTOUT_PLUGIN, &out), 0);
  EXPECT_NE(out.find("mask.cube_cutout  [sample]  from "), std::string::npos);
}

// dot writes a Graphviz digraph of the graph.
TEST(Cli, DotWritesGraphviz) {
  test::TempDir dir;
  const std::string g = dir.write("g.yaml", kGraph);
  std::string out;
  ASSERT_EQ(run_command(kBin + " dot " + g + " -o " + dir.path() + "/g.dot", &out), 0) << out;
  const std::string dot = read(dir.path() + "/g.dot");
  EXPECT_EQ(dot.rfind("digraph \"cli\"", 0), 0u);
  EXPECT_NE(dot.find("\"pred\" -> \"mse\""), std::string::npos);
}

// Outputs never replace what a command reads or what is no regular file:
// `dot -o` over its own graph, into a folder or a device is an error naming
// the option and path (it wrote nothing and exited 0 on a bad path); `weights
// export` and `weights import` over an existing file need --overwrite; `plot
// -o` takes only .svg names; `synth brats` into a folder that is not empty
// needs --overwrite.
TEST(Cli, OutputsDoNotReplaceInputsOrExistingData) {
  test::TempDir dir;
  const std::string g = dir.write("g.yaml", kGraph);
  std::string out;
  EXPECT_NE(run_command(kBin + " dot " + g + " -o " + g + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("output '" + g + "' is the graph this command reads"), std::string::npos) << out;
  EXPECT_EQ(read(g), kGraph);
  EXPECT_NE(run_command(kBin + " dot " + g + " -o " + dir.path() + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("no regular file"), std::string::npos) << out;
  EXPECT_NE(run_command(kBin + " dot " + g + " -o " + g + "/x.dot 2>&1", &out), 0) << out;
  EXPECT_NE(out.find(g + "/x.dot.tmp"), std::string::npos) << out;

  ASSERT_EQ(run_command(kBin + " run " + g + " --quiet --set train.epochs=1 --out " + dir.path() + "/run 2>&1", &out), 0) << out;
  const std::string ckpt = dir.path() + "/run/last.pt", sd = dir.path() + "/sd.pt";
  EXPECT_NE(run_command(kBin + " weights export " + ckpt + " " + ckpt + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("is the checkpoint this command reads"), std::string::npos) << out;
  ASSERT_EQ(run_command(kBin + " weights export " + ckpt + " " + sd + " 2>&1", &out), 0) << out;
  EXPECT_NE(run_command(kBin + " weights export " + ckpt + " " + sd + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("exists; pass --overwrite"), std::string::npos) << out;
  EXPECT_EQ(run_command(kBin + " weights export " + ckpt + " " + sd + " --overwrite 2>&1", &out), 0) << out;
  const std::string imported = dir.path() + "/imported.pt";
  ASSERT_EQ(run_command(kBin + " weights import " + sd + " " + imported + " --module net 2>&1", &out), 0) << out;
  EXPECT_NE(run_command(kBin + " weights import " + sd + " " + imported + " --module net 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("exists; pass --overwrite"), std::string::npos) << out;
  // plot writes SVG and says so for any other name (it wrote over a checkpoint).
  EXPECT_NE(run_command(kBin + " plot " + dir.path() + "/run -o " + ckpt + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("plot writes SVG; name a .svg file"), std::string::npos) << out;
  EXPECT_EQ(run_command(kBin + " plot " + dir.path() + "/run -o " + dir.path() + "/c.SVG 2>&1", &out), 0) << out;

  const std::string data = dir.path() + "/data";
  fs::create_directories(data);
  dir.write("data/notes.txt", "mine");
  EXPECT_NE(run_command(kBin + " synth brats --cases 1 --size 16 --out " + data + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("is not empty"), std::string::npos) << out;
  EXPECT_EQ(run_command(kBin + " synth brats --cases 1 --size 16 --overwrite --out " + data + " 2>&1", &out), 0) << out;
  EXPECT_EQ(read(data + "/notes.txt"), "mine");
}

// A run whose output pipe is closed (`umrflow run ... | head`) keeps going and
// writes its checkpoints (SIGPIPE killed it at the first progress line).
TEST(Cli, RunOutlivesAClosedOutputPipe) {
  test::TempDir dir;
  const std::string g = dir.write("g.yaml", kGraph);
  std::string out;
  run_command(kBin + " run " + g + " --out " + dir.path() + "/run 2>&1 | true", &out);
  EXPECT_TRUE(fs::exists(dir.path() + "/run/last.pt"));
  EXPECT_NE(read(dir.path() + "/run/log.txt").find("done:"), std::string::npos);
}

// A command-line number out of its declared bounds is told as declared
// (">= 0", "in [1, 100]"), in the error and in --help (an open bound printed
// 1.79769e+308 in full).
TEST(Cli, BoundsAreToldAsDeclared) {
  std::string out;
  EXPECT_NE(run_command(kBin + " split --from " + kBin + " --seed -1 --out y 2>&1", &out), 0);
  EXPECT_NE(out.find("value -1 is not >= 0"), std::string::npos) << out;
  EXPECT_EQ(out.find("79769"), std::string::npos) << out;
  EXPECT_NE(run_command(kBin + " synth brats --cases 0 --out y 2>&1", &out), 0);
  EXPECT_NE(out.find("value 0 is not in [1, 100000]"), std::string::npos) << out;
  // Hexadecimal and "inf", which CLI11 converts too, are checked as well.
  EXPECT_NE(run_command(kBin + " synth brats --cases 0x0 --out y 2>&1", &out), 0);
  EXPECT_NE(out.find("value 0x0 is not in [1, 100000]"), std::string::npos) << out;
  EXPECT_NE(run_command(kBin + " split --from " + kBin + " --seed -0x1 --out y 2>&1", &out), 0);
  EXPECT_NE(out.find("value -0x1 is not >= 0"), std::string::npos) << out;
  EXPECT_NE(run_command(kBin + " split --from " + kBin + " --val inf --out y 2>&1", &out), 0);
  EXPECT_NE(out.find("value inf is not in [0, 1]"), std::string::npos) << out;
  ASSERT_EQ(run_command(kBin + " synth brats --help", &out), 0);
  EXPECT_NE(out.find(">= 0"), std::string::npos) << out;
  EXPECT_EQ(out.find("79769"), std::string::npos) << out;
}

// init.from naming a PyTorch state dict says how to convert it (libtorch's
// reader asked for a constants.pkl), naming a run directory says to pick one
// of its checkpoints, and `weights import` of a run checkpoint says to use it
// as it is (it failed on a pickle opcode), and of a module id no graph can
// declare names the rule.
TEST(Cli, InitFromAStateDictOrAFolderSaysWhatToDo) {
  test::TempDir dir;
  const std::string g = dir.write("g.yaml", kGraph);
  std::string out;
  ASSERT_EQ(run_command(kBin + " run " + g + " --quiet --set train.epochs=1 --out " + dir.path() + "/run 2>&1", &out), 0) << out;
  const std::string sd = dir.path() + "/sd.pt";
  ASSERT_EQ(run_command(kBin + " weights export " + dir.path() + "/run/last.pt " + sd + " 2>&1", &out), 0) << out;
  EXPECT_NE(run_command(kBin + " run " + g + " --quiet --set modules.net.init.from=" + sd + " --out " + dir.path() + "/b 2>&1", &out), 0);
  EXPECT_NE(out.find("looks like a PyTorch state dict (torch.save); convert it with `umrflow weights import " + sd + " OUT.pt --module net`"),
            std::string::npos) << out;
  EXPECT_EQ(out.find("constants.pkl"), std::string::npos) << out;
  EXPECT_NE(run_command(kBin + " run " + g + " --quiet --set modules.net.init.from=" + dir.path() + "/run --out " + dir.path() + "/c 2>&1", &out), 0);
  EXPECT_NE(out.find("is a folder, not a checkpoint file"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir.path() + "/b")) << "a run that fails while it is set up leaves no run directory";
  // The other way round: `weights import` given a run checkpoint says to use it as it is.
  EXPECT_NE(run_command(kBin + " weights import " + dir.path() + "/run/last.pt " + dir.path() + "/x.pt --module net 2>&1", &out), 0);
  EXPECT_NE(out.find("is an umrflow run checkpoint, not a PyTorch state dict"), std::string::npos) << out;
  // A module id no graph can declare is refused (it wrote keys like '.w' that no init.from finds).
  for (const std::string bad : {"''", "a.b", "1net"}) {
    EXPECT_NE(run_command(kBin + " weights import " + sd + " " + dir.path() + "/y.pt --module " + bad + " 2>&1", &out), 0) << bad;
    EXPECT_NE(out.find("is not a module id"), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(dir.path() + "/y.pt"));
  }
  EXPECT_EQ(run_command(kBin + " weights import " + sd + " " + dir.path() + "/y.pt --module net_2 2>&1", &out), 0) << out;
}

// sweep runs each variant into its own directory and writes one table row per variant.
TEST(Cli, SweepTabulatesVariants) {
  test::TempDir dir;
  dir.write("g.yaml", kGraph);
  const std::string sweep = dir.write("sweep.yaml", R"(name: noise_ablation
base: g.yaml
set: {train.epochs: 1}
variants:
  - {name: baseline}
  - {name: more_noise, set: {data.noise.std: 1.0}}
  - {name: flip_instead, set: [data.noise.type=tensor.random_flip, data.noise.std=null]}
)");
  std::string out;
  ASSERT_EQ(run_command(kBin + " sweep " + sweep + " --quiet --out " + dir.path() + "/s", &out), 0) << out;
  const std::string csv = read(dir.path() + "/s/sweep.csv");
  std::istringstream rows(csv);
  std::vector<std::string> lines;
  for (std::string l; std::getline(rows, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 4u) << csv;
  EXPECT_EQ(lines[0].rfind("variant,status,", 0), 0u);
  EXPECT_NE(lines[0].find("mse"), std::string::npos);
  EXPECT_EQ(lines[1].rfind("baseline,done,", 0), 0u);
  EXPECT_EQ(lines[2].rfind("more_noise,done,", 0), 0u);
  EXPECT_EQ(lines[3].rfind("flip_instead,done,", 0), 0u);
  for (const char* v : {"baseline", "more_noise", "flip_instead"}) EXPECT_TRUE(fs::exists(dir.path() + "/s/" + v + "/metrics.jsonl")) << v;
  EXPECT_NE(read(dir.path() + "/s/flip_instead/graph.yaml").find("tensor.random_flip"), std::string::npos);
  const std::string md = read(dir.path() + "/s/sweep.md");
  EXPECT_NE(md.find("| more_noise | done |"), std::string::npos) << md;
  // A typo in any variant is found before any variant runs.
  const std::string bad = dir.write("bad.yaml", "base: g.yaml\nvariants:\n  - {name: a}\n  - {name: b, set: {data.noise.sdt: 1}}\n");
  EXPECT_EQ(run_command(kBin + " sweep " + bad + " --quiet --out " + dir.path() + "/bad", &out), 1);
  EXPECT_NE(out.find("variant 'b'"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir.path() + "/bad/a"));
  // A variant name is its run folder: one that leaves --out is refused.
  const std::string escape = dir.write("escape.yaml", "base: g.yaml\nvariants:\n  - {name: ../../evil}\n  - {name: ''}\n");
  EXPECT_EQ(run_command(kBin + " sweep " + escape + " --quiet --out " + dir.path() + "/e/a/b 2>&1", &out), 1);
  EXPECT_NE(out.find("variant name '../../evil' names its run folder"), std::string::npos) << out;
  EXPECT_NE(out.find("variant name '' names its run folder"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir.path() + "/e/evil"));
}

// Rerunning one variant with --only keeps the other variants' rows of the
// earlier table, marked as such (they became "not run" and lost their
// figures); a `metrics:` column no variant reports is warned about, naming it.
TEST(Cli, SweepOnlyKeepsEarlierRowsAndWarnsOfUnknownMetrics) {
  test::TempDir dir;
  dir.write("g.yaml", kGraph);
  const std::string sweep = dir.write("sweep.yaml", R"(base: g.yaml
set: {train.epochs: 1}
variants:
  - {name: baseline}
  - {name: more_noise, set: {data.noise.std: 1.0}}
  - {name: broken, set: {modules.net.init.from: g.yaml}}
)");
  std::string out;
  const std::string s = dir.path() + "/s";
  ASSERT_EQ(run_command("cd " + dir.path() + " && " + kBin + " sweep " + sweep + " --quiet --out " + s + " 2>&1", &out), 1) << out;
  const auto lines_of = [](const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream rows(text);
    for (std::string l; std::getline(rows, l);) lines.push_back(l);
    return lines;
  };
  const auto before = lines_of(read(s + "/sweep.csv"));
  ASSERT_EQ(before.size(), 4u);
  ASSERT_EQ(before[3].rfind("broken,\"failed: ", 0), 0u) << before[3];  // a quoted cell
  ASSERT_EQ(run_command("cd " + dir.path() + " && " + kBin + " sweep " + sweep + " --quiet --only more_noise --set data.noise.std=2.0 --out " + s + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("2 variant(s) not run now keep their rows"), std::string::npos) << out;
  const auto after = lines_of(read(s + "/sweep.csv"));
  ASSERT_EQ(after.size(), 4u);
  EXPECT_EQ(after[0], before[0]);
  EXPECT_EQ(after[1], "baseline,done (earlier run)" + before[1].substr(std::string("baseline,done").size()));
  const std::size_t status_end = before[3].find("\",", 8);
  ASSERT_NE(status_end, std::string::npos) << before[3];
  EXPECT_EQ(after[3], before[3].substr(0, status_end) + " (earlier run)" + before[3].substr(status_end));
  EXPECT_EQ(after[2].rfind("more_noise,done,", 0), 0u) << after[2];
  EXPECT_NE(after[2], before[2]);  // rerun with another noise
  EXPECT_NE(read(s + "/sweep.md").find("| baseline | done (earlier run) |"), std::string::npos);
  // An earlier table with CRLF line ends and a status holding a newline and quotes is read cell by cell.
  const std::string h = dir.path() + "/h";
  fs::create_directories(h);
  dir.write("h/sweep.csv", "variant,status,mse\r\nbaseline,\"failed: one\ntwo \"\"three\"\"\",\r\nbroken,done,0.25\r\n");
  ASSERT_EQ(run_command("cd " + dir.path() + " && " + kBin + " sweep " + sweep + " --quiet --only more_noise --out " + h + " 2>&1", &out), 0) << out;
  const std::string kept = read(h + "/sweep.csv");
  EXPECT_NE(kept.find("\nbaseline,\"failed: one\ntwo \"\"three\"\" (earlier run)\","), std::string::npos) << kept;
  EXPECT_NE(kept.find("\nbroken,done (earlier run),"), std::string::npos) << kept;
  EXPECT_NE(kept.find(",0.25"), std::string::npos) << kept;
  EXPECT_EQ(kept.find('\r'), std::string::npos) << kept;

  const std::string typo = dir.write("typo.yaml", "base: g.yaml\nset: {train.epochs: 1}\nmetrics: [no_such_metric]\nvariants:\n  - {name: a}\n");
  ASSERT_EQ(run_command(kBin + " sweep " + typo + " --quiet --out " + dir.path() + "/t 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("warning: metric 'no_such_metric' is in no variant's results"), std::string::npos) << out;
}

}  // namespace umrflow

namespace umrflow {

// bench stops on SIGTERM (as on Ctrl-C) after the current step with exit 143
// and removes its temporary folder (the default action killed it and left the
// folder). SIGTERM, since a background job of sh ignores SIGINT.
TEST(Cli, BenchStopsOnASignalAndRemovesItsTemporaryFolder) {
  test::TempDir dir;
  std::string long_graph = kGraph;
  long_graph.replace(long_graph.find("epochs: 2"), 9, "epochs: 100000");
  const std::string g = dir.write("g.yaml", long_graph), tmp = dir.path() + "/tmp";
  fs::create_directories(tmp);
  // Signal once the first run has logged an epoch: the handler is installed before any run starts.
  const std::string script = dir.write("bench.sh", "TMPDIR=" + tmp + " " + kBin + " bench " + g + " --threads 1 --repeat 1 > " + dir.path() +
                                                       "/table.md 2> " + dir.path() + "/err.txt &\npid=$!\nfor i in $(seq 600); do\n"
                                                       "  cat " + tmp + "/umrflow_bench_*/1_0/log.txt 2>/dev/null | grep -q 'epoch 1/' && break\n"
                                                       "  sleep 0.1\ndone\nkill -TERM $pid\nwait $pid\necho \"exit=$?\"\n");
  std::string out;
  run_command("sh " + script, &out);
  EXPECT_NE(out.find("exit=143"), std::string::npos) << out << read(dir.path() + "/err.txt");
  EXPECT_NE(read(dir.path() + "/err.txt").find("interrupted: the rows above are complete"), std::string::npos) << read(dir.path() + "/err.txt");
  EXPECT_NE(read(dir.path() + "/table.md").find("| threads |"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(tmp)) << "the temporary folder stays behind";
}

// Interrupted during its second thread count, bench still prints the op
// profile of the first (finished) one, and none of the unfinished one.
TEST(Cli, BenchInterruptedKeepsTheProfilesOfFinishedRows) {
  test::TempDir dir;
  std::string long_graph = kGraph;
  long_graph.replace(long_graph.find("epochs: 2"), 9, "epochs: 300");
  const std::string g = dir.write("g.yaml", long_graph), tmp = dir.path() + "/tmp";
  fs::create_directories(tmp);
  // Threads 1 runs its epochs to the end; threads 2 is stopped once it has logged an epoch.
  const std::string script = dir.write("bench.sh", "TMPDIR=" + tmp + " " + kBin + " bench " + g + " --threads 1,2 --repeat 1 --profile 3 > " +
                                                       dir.path() + "/table.md 2> " + dir.path() + "/err.txt &\npid=$!\nfor i in $(seq 1200); do\n"
                                                       "  cat " + tmp + "/umrflow_bench_*/2_0/log.txt 2>/dev/null | grep -q 'epoch 1/' && break\n"
                                                       "  sleep 0.05\ndone\nkill -TERM $pid\nwait $pid\necho \"exit=$?\"\n");
  std::string out;
  run_command("sh " + script, &out);
  const std::string table = read(dir.path() + "/table.md");
  EXPECT_NE(out.find("exit=143"), std::string::npos) << out << read(dir.path() + "/err.txt") << table;
  EXPECT_NE(table.find("\n| 1 | "), std::string::npos) << table;
  EXPECT_EQ(table.find("\n| 2 | "), std::string::npos) << table;
  EXPECT_NE(table.find("Profile, threads 1:"), std::string::npos) << table;
  EXPECT_EQ(table.find("Profile, threads 2:"), std::string::npos) << table;
  EXPECT_TRUE(fs::is_empty(tmp)) << "the temporary folder stays behind";
}

// A plugin adds a verb: `--help` lists it, its options come from its
// declarations (default, range), and it runs with its own exit status, with
// --plugin given before or after the verb.
TEST(Cli, PluginAddsAVerb) {
  const std::string plugin = UMRFLOW_VERB_PLUGIN;
  std::string out;
  ASSERT_EQ(run_command(kBin + " --plugin " + plugin + " --help", &out), 0) << out;
  EXPECT_NE(out.find("greet"), std::string::npos) << out;
  EXPECT_NE(out.find("prints a greeting"), std::string::npos) << out;
  EXPECT_EQ(run_command(kBin + " --plugin " + plugin + " greet --times 2", &out), 7) << out;
  EXPECT_EQ(out, "hello, world\nhello, world\n");
  EXPECT_EQ(run_command(kBin + " greet --name you --plugin=" + plugin, &out), 7) << out;
  EXPECT_EQ(out, "hello, you\n");
  EXPECT_NE(run_command(kBin + " --plugin " + plugin + " greet --times 5", &out), 7);
  EXPECT_NE(out.find("--times"), std::string::npos) << out;
  EXPECT_NE(run_command(kBin + " greet", &out), 0);  // without the plugin there is no such verb
}

}  // namespace umrflow

namespace umrflow {

// `validate` takes a pipeline: the phantom stages validate in order (each
// init.from is written by an earlier stage), and out of order the missing
// checkpoint is reported at its init.from with file:line:column.
TEST(Cli, ValidateChecksAPipelineInOrder) {
  test::TempDir dir;  // the working directory: no runs/ there
  const std::string g = std::string(UMRFLOW_SOURCE_DIR) + "/graphs/phantoms/";
  std::string out;
  EXPECT_EQ(run_command("cd " + dir.path() + " && " + kBin + " validate " + g + "stage1.yaml " + g + "stage2.yaml " + g +
                            "stage3.yaml " + g + "eval.yaml",
                        &out),
            0)
      << out;
  EXPECT_NE(out.find("stage3.yaml: valid"), std::string::npos) << out;
  EXPECT_NE(out.find("and its validation graph"), std::string::npos) << out;
  EXPECT_EQ(run_command("cd " + dir.path() + " && " + kBin + " validate " + g + "stage3.yaml " + g + "stage2.yaml", &out), 1);
  std::ifstream in(g + "stage3.yaml");
  std::stringstream text;
  text << in.rdbuf();
  const auto [line, col] = test::position_of(text.str(), "runs/phantom_stage2/last.pt");
  EXPECT_NE(out.find(g + "stage3.yaml:" + std::to_string(line) + ":" + std::to_string(col) +
                     ": module 'net': init checkpoint 'runs/phantom_stage2/last.pt' does not exist"),
            std::string::npos)
      << out;
}

}  // namespace umrflow
