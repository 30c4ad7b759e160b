#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "instance.h"
#include "test_paths.h"
#include "test_util.h"
#include "umrflow/declare.h"
#include "umrflow/doc.h"
#include "umrflow/node.h"
#include "umrflow/registry.h"
#include "umrflow/curves.h"
#include "umrflow/digest.h"
#include "umrflow/files.h"
#include "umrflow/own_kernels.h"
#include "umrflow/run.h"

namespace umrflow {

namespace fs = std::filesystem;

namespace {

std::string graph_text(const std::string& extra_module = "", const std::string& train = "train: {epochs: 2, objective: mse, optimizer: {type: adam, lr: 0.05}}\n") {
  return "umrflow: 1\nname: small\nseed: 4\nmodules:\n  net: {type: model.channel_mix, in_channels: 2" + extra_module +
         "}\ndata:\n  - {id: source, type: synthetic.tensors, count: 32, shape: [2, 4, 4, 4]}\n"
         "  - {id: flip, type: tensor.random_flip, in: source}\n  - {id: batch, type: batch, in: flip, size: 4}\n"
         "step:\n  - {id: pred, type: call, module: net, in: batch.image}\n"
         "  - {id: mse, type: loss.mse, in: [pred, batch.target]}\n" + train;
}

Graph load(const test::TempDir& dir, const std::string& text, const Registry& r, const std::string& name = "g.yaml") {
  const std::string path = dir.write(name, text);
  return build_graph(load_graph_doc(path), path, r);
}

std::vector<std::string> lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

RunOptions quiet_into(const std::string& dir, int threads = 2) {
  RunOptions o;
  o.run_dir = dir;
  o.quiet = true;
  o.threads = threads;
  return o;
}

}  // namespace

// A training run leaves the resolved graph, a log, one metrics line per epoch
// and checkpoints, with no temporary files; the loss goes down.
TEST(Run, WritesRunDirectory) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph g = load(dir, graph_text(), r);
  const std::string out = dir.path() + "/run";
  RunSummary s = run_graph(g, r, quiet_into(out));
  EXPECT_EQ(s.run_dir, out);
  EXPECT_EQ(s.epochs_done, 2);
  for (const char* f : {"graph.yaml", "log.txt", "metrics.jsonl", "epoch_0001.pt", "epoch_0002.pt", "last.pt", "curves.svg"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  for (const auto& e : fs::directory_iterator(out)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();
  auto m = lines(out + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_NE(m[0].find("\"epoch\": 1"), std::string::npos);
  EXPECT_NE(m[1].find("\"epoch\": 2"), std::string::npos);
  const auto last = read_last_metrics(out + "/metrics.jsonl");
  EXPECT_EQ(last.at("epoch"), 2.0);
  EXPECT_NEAR(s.final_metrics.at("mse"), last.at("mse"), 1e-6 * last.at("mse"));
  std::ifstream first_line(out + "/metrics.jsonl");
  std::string l1;
  std::getline(first_line, l1);
  test::TempDir tmp;
  const auto first = read_last_metrics(tmp.write("m.jsonl", l1));
  EXPECT_LT(last.at("mse"), first.at("mse"));
  // The resolved graph is itself a valid graph.
  EXPECT_NO_THROW(build_graph(load_graph_doc(out + "/graph.yaml"), out + "/graph.yaml", r));
  // The checkpoint holds the module's weights under `module.name` and the epoch.
  torch::serialize::InputArchive a;
  a.load_from(out + "/last.pt");
  torch::Tensor w, epoch;
  ASSERT_TRUE(a.try_read("net.weight", w));
  EXPECT_EQ(w.sizes(), (c10::IntArrayRef{1, 2}));
  ASSERT_TRUE(a.try_read("umrflow.epoch", epoch));
  EXPECT_EQ(epoch.item<std::int64_t>(), 2);
}

// An existing, non-empty run directory is never written into.
TEST(Run, ExistingRunDirectoryIsKept) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph g = load(dir, graph_text(), r);
  const std::string out = dir.path() + "/run";
  dir.write("run/last.pt", "precious");
  RunSummary s = run_graph(g, r, quiet_into(out));
  EXPECT_EQ(s.run_dir, out + ".1");
  std::ifstream in(out + "/last.pt");
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

// The same seed gives the same metrics with one and with two data-plane threads.
TEST(Run, SameSeedSameResultAtAnyThreadCount) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph g = load(dir, graph_text(), r);
  auto one = run_graph(g, r, quiet_into(dir.path() + "/a", 1)).final_metrics;
  auto two = run_graph(g, r, quiet_into(dir.path() + "/b", 2)).final_metrics;
  EXPECT_EQ(one.at("mse"), two.at("mse"));
}

// A graph that does not train runs `passes` epochs (benchmarks time the last),
// each with its own random draws; a training graph ignores passes.
TEST(Run, PassesRepeatAGraphThatDoesNotTrain) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph g = load(dir, graph_text("", ""), r);
  RunOptions o = quiet_into(dir.path() + "/three");
  o.passes = 3;
  RunSummary s = run_graph(g, r, o);
  EXPECT_EQ(s.epochs_done, 3);
  const auto metrics = lines(s.run_dir + "/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_NE(metrics[0].substr(metrics[0].find("\"mse\"")), metrics[1].substr(metrics[1].find("\"mse\"")));
  Graph trained = load(dir, graph_text(), r, "t.yaml");
  o.run_dir = dir.path() + "/train";
  EXPECT_EQ(run_graph(trained, r, o).epochs_done, 2);
}

// A stop request ends the run after the current step; the cut epoch's weights
// go to interrupted.pt and no last.pt claims a whole epoch.
TEST(Run, StopWritesCheckpoint) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph g = load(dir, graph_text(), r);
  std::atomic<bool> stop{true};
  RunOptions o = quiet_into(dir.path() + "/run");
  o.stop = &stop;
  RunSummary s = run_graph(g, r, o);
  EXPECT_TRUE(s.interrupted);
  EXPECT_TRUE(fs::exists(dir.path() + "/run/interrupted.pt"));
  EXPECT_FALSE(fs::exists(dir.path() + "/run/last.pt"));
  EXPECT_FALSE(fs::exists(dir.path() + "/run/epoch_0001.pt"));
  EXPECT_EQ(lines(dir.path() + "/run/metrics.jsonl").size(), 1u);
  // The curves of an interrupted run are drawn too, every metric a panel.
  std::ifstream svg(dir.path() + "/run/curves.svg");
  const std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  for (const auto& [key, value] : read_last_metrics(dir.path() + "/run/metrics.jsonl"))
    if (key != "epoch") EXPECT_NE(text.find(">" + key + "</text>"), std::string::npos) << key;
}

// A module initialised from a checkpoint starts from its weights: the trained
// weights evaluate far better than fresh ones, and frozen modules are accepted.
TEST(Run, ModuleInitFromCheckpoint) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph train = load(dir, graph_text("", "train: {epochs: 4, objective: mse, optimizer: {type: adam, lr: 0.1}}\n"), r);
  const std::string trained = run_graph(train, r, quiet_into(dir.path() + "/train")).run_dir + "/last.pt";
  Graph fresh = load(dir, graph_text("", ""), r, "fresh.yaml");
  Graph init = load(dir, graph_text(", frozen: true, init: {from: " + trained + "}", ""), r, "init.yaml");
  const double fresh_mse = run_graph(fresh, r, quiet_into(dir.path() + "/fresh")).final_metrics.at("mse");
  const double init_mse = run_graph(init, r, quiet_into(dir.path() + "/init")).final_metrics.at("mse");
  EXPECT_LT(init_mse, 0.1 * fresh_mse);
  // Patterns that select nothing are an error, not a silent no-op; the run
  // failed while it was set up, so its run directory is gone.
  Graph none = load(dir, graph_text(", init: {from: " + trained + ", include: [\"nothing*\"]}", ""), r, "none.yaml");
  EXPECT_THROW(run_graph(none, r, quiet_into(dir.path() + "/none")), std::runtime_error);
  EXPECT_FALSE(fs::exists(dir.path() + "/none"));
}

// An existing run directory named with a trailing "/" or "/." (a shell's
// completion) gets the .N suffix beside it, not a hidden folder inside it.
TEST(Run, TrailingSlashNamesTheSameRunDirectory) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph g = load(dir, graph_text(), r);
  const std::string base = dir.path() + "/run";
  EXPECT_EQ(run_graph(g, r, quiet_into(base + "/")).run_dir, base);
  EXPECT_EQ(run_graph(g, r, quiet_into(base + "/")).run_dir, base + ".1");
  EXPECT_EQ(run_graph(g, r, quiet_into(base + "/.")).run_dir, base + ".2");
}

// A node that fails at run time stops the run with its id and the sample, and
// checkpoints written before stay.
TEST(Run, NodeFailureIsReportedAndCheckpointsKept) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  std::string text = graph_text();
  text.replace(text.find("in: source}"), 11, "in: source, axes: [7], p: 1.0}");
  Graph g = load(dir, text, r);
  try {
    run_graph(g, r, quiet_into(dir.path() + "/run"));
    FAIL();
  } catch (const NodeError& e) {
    EXPECT_EQ(e.node_id(), "flip");
    EXPECT_NE(std::string(e.what()).find("axis 7 is out of range"), std::string::npos);
    EXPECT_NE(e.sample().find("synthetic_"), std::string::npos);
  }
  EXPECT_TRUE(fs::exists(dir.path() + "/run/graph.yaml"));
}

// Atomic writes replace the file whole and leave no temporary behind.
TEST(Run, AtomicWrite) {
  test::TempDir dir;
  const std::string p = dir.path() + "/f.txt";
  write_file_atomically(p, "one");
  write_file_atomically(p, "two");
  std::ifstream in(p);
  std::string s;
  in >> s;
  EXPECT_EQ(s, "two");
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}

// A full disk while a checkpoint is written is an error naming the file (it
// ended the process when libtorch's file writer met it), the temporary file
// is removed and the checkpoint already there is kept whole. The temporary
// file is made a link to /dev/full, whose writes fail with ENOSPC.
TEST(Run, CheckpointOnAFullDiskIsAnErrorAndKeepsTheOldOne) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  test::TempDir dir;
  const std::string p = dir.path() + "/last.pt";
  save_checkpoint(p, {{"w", torch::ones({4})}}, nullptr);
  const std::string before = sha256_file(p);
  fs::create_symlink("/dev/full", p + ".tmp");
  try {
    save_checkpoint(p, {{"w", torch::zeros({100000})}}, nullptr);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(p + ".tmp"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("disk full"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(p + ".tmp")));
  EXPECT_EQ(sha256_file(p), before);
  EXPECT_TRUE(check_recorded_digest(p)) << "the ledger lists the old checkpoint";
}

namespace {
std::map<std::string, torch::Tensor> read_weights(const std::string& path, const std::vector<std::string>& names) {
  torch::serialize::InputArchive a;
  a.load_from(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& n : names) a.read(n, out[n]);
  return out;
}
}  // namespace

// A run stopped after its second epoch and resumed with --resume ends with the
// same weights and optimizer moments as an uninterrupted run of four epochs
// (warm-up cosine schedule, AdamW, random flips on the data plane).
TEST(Run, ResumeReachesTheUninterruptedWeights) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  const std::string train =
      "train: {epochs: 4, objective: mse, optimizer: {type: adamw, lr: 0.05, weight_decay: 0.01},"
      " schedule: {type: warmup_cosine, warmup_epochs: 2}}\n";
  Graph g = load(dir, graph_text("", train), r);
  run_graph(g, r, quiet_into(dir.path() + "/whole"));

  Graph short_graph = load(dir, graph_text("", train), r, "short.yaml");
  short_graph.train.epochs = 2;  // as if killed right after the checkpoint of epoch 2
  RunOptions first = quiet_into(dir.path() + "/cut");
  run_graph(short_graph, r, first);
  ASSERT_TRUE(fs::exists(dir.path() + "/cut/last.pt"));
  RunOptions again = quiet_into("");
  again.resume = dir.path() + "/cut";
  RunSummary s = run_graph(g, r, again);
  EXPECT_EQ(s.run_dir, dir.path() + "/cut");
  EXPECT_EQ(lines(dir.path() + "/cut/metrics.jsonl").size(), 4u);
  const auto a = read_weights(dir.path() + "/whole/last.pt", {"net.weight", "umrflow.epoch"});
  const auto b = read_weights(dir.path() + "/cut/last.pt", {"net.weight", "umrflow.epoch"});
  EXPECT_EQ(b.at("umrflow.epoch").item<std::int64_t>(), 4);
  EXPECT_TRUE(torch::equal(a.at("net.weight"), b.at("net.weight")));
  // The resumed epochs saw the schedule's learning rates, not the first ones again.
  EXPECT_EQ(read_last_metrics(dir.path() + "/cut/metrics.jsonl").at("lr"), read_last_metrics(dir.path() + "/whole/metrics.jsonl").at("lr"));
  // Resumed with more epochs, the run's graph.yaml records the graph it went on with.
  std::string longer = train;
  longer.replace(longer.find("epochs: 4"), 9, "epochs: 5");
  Graph five = load(dir, graph_text("", longer), r, "five.yaml");
  run_graph(five, r, again);
  EXPECT_EQ(lines(dir.path() + "/cut/metrics.jsonl").size(), 5u);
  std::ifstream recorded(dir.path() + "/cut/graph.yaml");
  const std::string yaml((std::istreambuf_iterator<char>(recorded)), std::istreambuf_iterator<char>());
  EXPECT_NE(yaml.find("epochs: 5"), std::string::npos) << yaml;
}

// Resuming a directory without any checkpoint is refused with the reason.
TEST(Run, ResumeWithoutCheckpointIsRefused) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph g = load(dir, graph_text(), r);
  RunOptions o = quiet_into("");
  o.resume = dir.path();
  try {
    run_graph(g, r, o);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no last.pt or epoch_NNNN.pt"), std::string::npos) << e.what();
  }
}

// The released schedule (warm-up 50 of 300 epochs, lr 1e-4): epoch 0 trains at
// 0, epoch 49 at 1e-4, then a half cosine: e.g. epoch 175 at 5e-5.
TEST(Run, WarmupCosineScheduleMatchesTheClosedForm) {
  TrainSettings t;
  t.schedule = "warmup_cosine";
  t.lr = 1e-4;
  t.epochs = 300;
  t.warmup_epochs = 50;
  EXPECT_DOUBLE_EQ(scheduled_lr(t, 0), 0.0);
  EXPECT_NEAR(scheduled_lr(t, 10), 10 * 1e-4 / 49, 1e-15);
  EXPECT_NEAR(scheduled_lr(t, 49), 1e-4, 1e-15);
  EXPECT_NEAR(scheduled_lr(t, 50), 1e-4, 1e-15);
  EXPECT_NEAR(scheduled_lr(t, 175), 5e-5, 1e-15);
  EXPECT_NEAR(scheduled_lr(t, 299), 0.5e-4 * (1 + std::cos(M_PI * 249 / 250)), 1e-15);
  t.schedule = "constant";
  EXPECT_DOUBLE_EQ(scheduled_lr(t, 7), 1e-4);
}

// train.validate runs the validation graph on the current weights every N
// epochs and after the last, logs val.<metric>, and keeps best.pt at the best
// epoch; an unknown metric is an error that lists the validation scalars.
TEST(Run, ValidationKeepsTheBestCheckpoint) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  dir.write("val.yaml",
            "umrflow: 1\nname: val\nseed: 9\nmodules:\n  net: {type: model.channel_mix, in_channels: 2}\n"
            "data:\n  - {id: source, type: synthetic.tensors, count: 8, shape: [2, 4, 4, 4]}\n  - {id: batch, type: batch, in: source, size: 4}\n"
            "step:\n  - {id: pred, type: call, module: net, in: batch.image}\n  - {id: mse, type: loss.mse, in: [pred, batch.target]}\n");
  const std::string train =
      "train: {epochs: 3, objective: mse, optimizer: {type: adam, lr: 0.05},"
      " validate: {graph: val.yaml, every: 2, metric: mse, mode: min}}\n";
  Graph g = load(dir, graph_text("", train), r);
  run_graph(g, r, quiet_into(dir.path() + "/run"));
  const auto metrics = lines(dir.path() + "/run/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_EQ(metrics[0].find("val.mse"), std::string::npos);
  EXPECT_NE(metrics[1].find("val.mse"), std::string::npos);
  EXPECT_NE(metrics[2].find("val.mse"), std::string::npos);
  ASSERT_TRUE(fs::exists(dir.path() + "/run/best.pt"));
  torch::serialize::InputArchive a;
  a.load_from(dir.path() + "/run/best.pt");
  torch::Tensor epoch, best;
  a.read("umrflow.epoch", epoch);
  a.read("umrflow.best", best);
  const double v2 = read_last_metrics(dir.path() + "/run/metrics.jsonl").at("val.mse");
  EXPECT_EQ(epoch.item<std::int64_t>(), std::abs(best.item<double>() - v2) <= 1e-6 * std::abs(v2) ? 3 : 2);

  Graph bad = load(dir, graph_text("", train.substr(0, train.find("metric")) + "metric: nothing}}\n"), r, "bad.yaml");
  try {
    run_graph(bad, r, quiet_into(dir.path() + "/bad"));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("mse"), std::string::npos) << e.what();
  }
}

namespace {

std::atomic<bool>* g_stop_from_node = nullptr;

/// A loss that raises the stop flag when it runs in evaluation (as Ctrl-C during validation would).
class StopWhenEvaluating final : public StepNode {
 public:
  Packet run(const std::vector<Packet>& in, Context& ctx) override {
    if (!ctx.training() && g_stop_from_node) g_stop_from_node->store(true);
    Packet out;
    out.tensors["loss"] = in.at(0).at("pred").mean();
    return out;
  }
};

Registry registry_with_stopper() {
  Registry r = test::builtin_registry();
  NodeSpec s;
  s.type = "test.stop_when_evaluating";
  s.kind = NodeKind::step;
  s.summary = "raises the stop flag in evaluation";
  s.inputs = {PortSpec{"pred", {{"pred", -1, "anything"}}, "anything"}};
  s.outputs = {{"loss", 0, "scalar"}};
  s.create = [](const Params&) { return std::make_unique<StopWhenEvaluating>(); };
  r.add(std::move(s));
  return r;
}

}  // namespace

// A stop during validation discards it: no val.* figures, no best.pt, the
// epoch's line marked partial, the weights in interrupted.pt.
TEST(Run, StopDuringValidationIsDiscarded) {
  test::TempDir dir;
  Registry r = registry_with_stopper();
  dir.write("val.yaml",
            "umrflow: 1\nname: val\nseed: 9\nmodules:\n  net: {type: model.channel_mix, in_channels: 2}\n"
            "data:\n  - {id: source, type: synthetic.tensors, count: 8, shape: [2, 4, 4, 4]}\n  - {id: batch, type: batch, in: source, size: 2}\n"
            "step:\n  - {id: pred, type: call, module: net, in: batch.image}\n  - {id: score, type: test.stop_when_evaluating, in: pred}\n");
  const std::string train = "train: {epochs: 3, objective: mse, optimizer: {type: adam, lr: 0.05},"
                            " validate: {graph: val.yaml, every: 1, metric: score, mode: min}}\n";
  Graph g = load(dir, graph_text("", train), r);
  std::atomic<bool> stop{false};
  g_stop_from_node = &stop;
  RunOptions o = quiet_into(dir.path() + "/run");
  o.stop = &stop;
  RunSummary s = run_graph(g, r, o);
  g_stop_from_node = nullptr;
  EXPECT_TRUE(s.interrupted);
  EXPECT_FALSE(fs::exists(dir.path() + "/run/best.pt"));
  EXPECT_FALSE(fs::exists(dir.path() + "/run/last.pt"));
  EXPECT_TRUE(fs::exists(dir.path() + "/run/interrupted.pt"));
  const auto metrics = lines(dir.path() + "/run/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_EQ(metrics[0].find("val."), std::string::npos) << metrics[0];
  EXPECT_NE(metrics[0].find("\"partial\": 1"), std::string::npos) << metrics[0];
}

// A resumed run that completes the epoch an earlier stop cut short removes
// that stop's interrupted.pt and its ledger line (it stayed, older than
// last.pt, beside the finished run); the other checkpoints' digests stay.
TEST(Run, ResumedRunRemovesTheStaleInterruptedCheckpoint) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  const std::string train = "train: {epochs: 3, objective: mse, optimizer: {type: adam, lr: 0.05}}\n";
  Graph one = load(dir, graph_text("", train), r, "one.yaml");
  one.train.epochs = 1;
  const std::string run = dir.path() + "/run";
  run_graph(one, r, quiet_into(run));
  // As a stop during epoch 2 leaves it: interrupted.pt beside last.pt of epoch 1, in the ledger.
  fs::copy_file(run + "/last.pt", run + "/interrupted.pt");
  record_digest(run + "/interrupted.pt", sha256_file(run + "/interrupted.pt"), false);
  Graph g = load(dir, graph_text("", train), r);
  RunOptions again = quiet_into("");
  again.resume = run;
  EXPECT_EQ(run_graph(g, r, again).epochs_done, 3);
  EXPECT_FALSE(fs::exists(run + "/interrupted.pt"));
  const std::string ledger = test::read_file(run + "/checksums.sha256");
  EXPECT_EQ(ledger.find("interrupted.pt"), std::string::npos) << ledger;
  EXPECT_NE(ledger.find("  last.pt"), std::string::npos) << ledger;
  EXPECT_TRUE(check_recorded_digest(run + "/last.pt"));
  const auto log = lines(run + "/log.txt");
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [](const std::string& l) { return l.find("removed interrupted.pt") != std::string::npos; }));
}

// Resuming with a damaged last.pt (cut in half, as by a kill) and the
// newest epoch checkpoint gone falls back to epoch_0002.pt, says so, drops the
// metrics lines of later epochs and a left-over temporary file, and ends with
// the weights of an uninterrupted run.
TEST(Run, ResumeFallsBackToTheNewestWholeCheckpoint) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  const std::string train = "train: {epochs: 4, objective: mse, optimizer: {type: adam, lr: 0.05}}\n";
  Graph g = load(dir, graph_text("", train), r);
  run_graph(g, r, quiet_into(dir.path() + "/whole"));
  Graph three = load(dir, graph_text("", train), r, "three.yaml");
  three.train.epochs = 3;
  run_graph(three, r, quiet_into(dir.path() + "/cut"));
  const std::string cut = dir.path() + "/cut";
  fs::remove(cut + "/epoch_0003.pt");
  fs::resize_file(cut + "/last.pt", fs::file_size(cut + "/last.pt") / 2);
  dir.write("cut/last.pt.tmp", "half a checkpoint");
  {
    std::ofstream m(cut + "/metrics.jsonl", std::ios::app);
    m << lines(cut + "/metrics.jsonl").back() << "\n";  // as after a kill between the append and the rename
  }
  RunOptions again = quiet_into("");
  again.resume = cut;
  RunSummary s = run_graph(g, r, again);
  EXPECT_EQ(s.epochs_done, 4);
  const auto log = lines(cut + "/log.txt");
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [](const std::string& l) { return l.find("resuming from epoch_0002.pt") != std::string::npos; }));
  EXPECT_FALSE(fs::exists(cut + "/last.pt.tmp"));
  const auto metrics = lines(cut + "/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 4u);
  for (int e = 0; e < 4; ++e) EXPECT_NE(metrics[e].find("\"epoch\": " + std::to_string(e + 1) + ","), std::string::npos) << metrics[e];
  const auto a = read_weights(dir.path() + "/whole/last.pt", {"net.weight"});
  const auto b = read_weights(cut + "/last.pt", {"net.weight"});
  EXPECT_TRUE(torch::equal(a.at("net.weight"), b.at("net.weight")));
}

// checksums.sha256 is what `sha256sum -c` accepts for every checkpoint; a
// checkpoint replaced after the fact by another whole one (another run's
// last.pt: valid zip, valid CRCs) is refused on resume with the ledger named,
// and the run falls back to the newest checkpoint that matches.
TEST(Run, CheckpointDigestsAreRecordedAndChecked) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  const std::string train = "train: {epochs: 4, objective: mse, optimizer: {type: adam, lr: 0.05}}\n";
  Graph g = load(dir, graph_text("", train), r);
  run_graph(g, r, quiet_into(dir.path() + "/whole"));
  EXPECT_EQ(test::run_command("cd " + dir.path() + "/whole && sha256sum --quiet -c checksums.sha256", nullptr), 0);
  Graph three = load(dir, graph_text("", train), r, "three.yaml");
  three.train.epochs = 3;
  run_graph(three, r, quiet_into(dir.path() + "/cut"));
  const std::string cut = dir.path() + "/cut";
  fs::copy_file(dir.path() + "/whole/last.pt", cut + "/last.pt", fs::copy_options::overwrite_existing);
  EXPECT_NE(test::run_command("cd " + cut + " && sha256sum --quiet -c checksums.sha256 2>/dev/null", nullptr), 0);
  RunOptions again = quiet_into("");
  again.resume = cut;
  RunSummary s = run_graph(g, r, again);
  EXPECT_EQ(s.epochs_done, 4);
  const auto log = lines(cut + "/log.txt");
  const auto has = [&](const std::string& text) {
    return std::any_of(log.begin(), log.end(), [&](const std::string& l) { return l.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(has("does not match its SHA-256 in " + cut + "/checksums.sha256"));
  EXPECT_TRUE(has("resuming from epoch_0003.pt"));
  EXPECT_EQ(test::run_command("cd " + cut + " && sha256sum --quiet -c checksums.sha256", nullptr), 0);
}

// An evaluation graph (no `train:`) takes its data-plane settings from
// `execution:` like any other graph; the log says which it ran with.
TEST(Run, EvaluationGraphUsesItsExecutionSettings) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph g = load(dir, graph_text("", "execution: {prefetch: 12, threads: 1}\n"), r);
  EXPECT_FALSE(g.train.enabled);
  EXPECT_EQ(g.execution.prefetch, 12);
  RunOptions o = quiet_into(dir.path() + "/eval", -1);
  run_graph(g, r, o);
  const auto log = lines(dir.path() + "/eval/log.txt");
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log[0].find("data-plane threads 1, prefetch 12"), std::string::npos) << log[0];
}

/// A data node that takes `ms` milliseconds per sample: a deliberate bottleneck.
class SlowSample final : public SampleNode {
 public:
  static void declare(Declaration<SlowSample>& d) {
    d.type("test.slow", NodeKind::sample, "sleeps, then passes the sample on");
    d.input({"in", {}, "the sample"});
    d.param(&SlowSample::ms_, param::integer("ms", 10, "milliseconds per sample").min(0));
  }
  void apply(Packet&, Context&) override { std::this_thread::sleep_for(std::chrono::milliseconds(ms_)); }

 private:
  std::int64_t ms_ = 0;
};

/// A data node that records the own_kernels() its samples saw: bit 0 for
/// false, bit 1 for true.
class KernelChoiceProbe final : public SampleNode {
 public:
  static std::atomic<int> seen;
  static void declare(Declaration<KernelChoiceProbe>& d) {
    d.type("test.kernel_probe", NodeKind::sample, "records own_kernels(), then passes the sample on");
    d.input({"in", {}, "the sample"});
  }
  void apply(Packet&, Context&) override { seen |= own_kernels() ? 2 : 1; }
};
std::atomic<int> KernelChoiceProbe::seen{0};

// execution.own_kernels (default true) is what nodes see through
// own_kernels() during the run, both ways; the run restores the previous value.
TEST(Run, OwnKernelsSettingIsWhatNodesSee) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  add_nodes<KernelChoiceProbe>(r);
  for (const bool on : {false, true}) {
    std::string text = graph_text("", std::string("execution: {own_kernels: ") + (on ? "true" : "false") + "}\n");
    text.replace(text.find("  - {id: batch,"), 0, "  - {id: probe, type: test.kernel_probe, in: flip}\n");
    text.replace(text.find("in: flip, size: 4"), 8, "in: probe");
    Graph g = load(dir, text, r, std::string("g") + (on ? "1" : "0") + ".yaml");
    EXPECT_EQ(g.execution.own_kernels, on);
    const OwnKernelsScope before(!on);
    KernelChoiceProbe::seen = 0;
    run_graph(g, r, quiet_into(dir.path() + (on ? "/on" : "/off")));
    EXPECT_EQ(KernelChoiceProbe::seen.load(), on ? 2 : 1);
    EXPECT_EQ(own_kernels(), !on) << "the run did not restore the previous value";
  }
  EXPECT_TRUE(load(dir, graph_text("", ""), r, "default.yaml").execution.own_kernels);
}

// profile_last_epoch returns the last epoch's op profile over its steps:
// the step nodes' scopes, the backward pass and the optimizer step among them.
TEST(Run, ProfileOfTheLastEpochNamesStepNodesAndBackward) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph g = load(dir, graph_text(), r);
  RunOptions o = quiet_into(dir.path() + "/run", 1);
  o.profile_last_epoch = true;
  const RunSummary s = run_graph(g, r, o);
  EXPECT_EQ(s.profile_steps, 8);  // 32 samples in batches of 4
  for (const std::string name : {"node pred", "node mse", "backward", "optimizer step"}) {
    const auto it = std::find_if(s.profile.begin(), s.profile.end(), [&](const OpProfile::Row& row) { return row.name == name; });
    ASSERT_NE(it, s.profile.end()) << name;
    EXPECT_EQ(it->calls, 8) << name;  // once per step, in the last epoch only
  }
  RunOptions plain = quiet_into(dir.path() + "/plain", 1);
  EXPECT_TRUE(run_graph(g, r, plain).profile.empty());
}

// With a data node 100 times slower than the step, the step plane waits: the
// epoch's busy fraction falls far below 1, the run warns once naming that
// node, and node_times.tsv lists every data node and the step plane.
TEST(Run, SlowDataNodeIsNamedAsTheBottleneck) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  add_nodes<SlowSample>(r);
  std::string text = graph_text();
  text.replace(text.find("  - {id: batch,"), 0, "  - {id: sleepy, type: test.slow, in: flip, ms: 20}\n");
  text.replace(text.find("in: flip, size: 4"), 8, "in: sleepy");
  Graph g = load(dir, text, r);
  const RunSummary s = run_graph(g, r, quiet_into(dir.path() + "/run", 1));
  EXPECT_LT(s.final_metrics.at("busy_fraction"), 0.5);
  EXPECT_GT(s.final_metrics.at("data_wait_s"), 0.3);  // 32 samples x 20 ms on one thread, less what overlaps the steps
  // A step's own time leaves out the waits for data (here most of the epoch).
  EXPECT_GT(s.final_metrics.at("step_median_s"), 0.0);
  EXPECT_LT(s.final_metrics.at("step_median_s"), s.final_metrics.at("data_wait_s") / 4);
  const auto log = lines(dir.path() + "/run/log.txt");
  const auto warnings = std::count_if(log.begin(), log.end(), [](const std::string& l) {
    return l.find("the data plane is the bottleneck") != std::string::npos;
  });
  EXPECT_EQ(warnings, 1);
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [](const std::string& l) {
    return l.find("slowest data node is 'sleepy' (test.slow)") != std::string::npos;
  }));
  const auto times = lines(dir.path() + "/run/node_times.tsv");
  ASSERT_EQ(times.size(), 1u + 2u * 4u);  // header; per epoch: source, flip, sleepy, the step plane
  EXPECT_EQ(times[0], "epoch\tnode\ttype\tcalls\tmean_ms\ttotal_s");
  EXPECT_EQ(times[3].rfind("1\tsleepy\ttest.slow\t32\t", 0), 0u) << times[3];
  EXPECT_GE(std::stod(times[3].substr(times[3].find("\t32\t") + 4)), 19.0) << times[3];
  EXPECT_EQ(times[4].rfind("1\t(step plane)\tper batch\t8\t", 0), 0u) << times[4];
}

// An epoch that sees no sample (a batch larger than the data with drop_last)
// is an error that says so, and writes no checkpoint.
TEST(Run, EpochWithoutSamplesIsAnError) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  std::string text = graph_text();
  text.replace(text.find("size: 4}"), 8, "size: 64, drop_last: true}");
  text += "execution: {prefetch: 64}\n";
  Graph g = load(dir, text, r);
  try {
    run_graph(g, r, quiet_into(dir.path() + "/run"));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("saw no sample"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("drop_last"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() + "/run/last.pt"));
}

// Weights with NaN in an init checkpoint are refused with the module, tensor and file.
TEST(Run, NonFiniteInitWeightsAreRefused) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  Graph g = load(dir, graph_text(), r);
  run_graph(g, r, quiet_into(dir.path() + "/run"));
  {
    torch::serialize::InputArchive in;
    in.load_from(dir.path() + "/run/last.pt");
    torch::serialize::OutputArchive out;
    for (const auto& k : in.keys()) {
      torch::Tensor t;
      if (!in.try_read(k, t)) continue;
      if (k == "net.weight") t = t.clone().fill_(std::nan(""));
      out.write(k, t);
    }
    out.save_to(dir.path() + "/nan.pt");
  }
  Graph eval = load(dir, graph_text(", init: {from: " + dir.path() + "/nan.pt}"), r, "eval.yaml");
  try {
    run_graph(eval, r, quiet_into(dir.path() + "/eval"));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("net.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
}

// With execution.log_every the steps between checks never read a value back,
// yet the epoch means are the same to the last bit (they are summed on the
// device in float64, in the same order).
TEST(Run, LogEveryKeepsTheMetrics) {
  test::TempDir dir;
  Registry r = test::builtin_registry();
  const Graph every = load(dir, graph_text(), r, "a.yaml");
  const Graph third = load(dir, "execution: {log_every: 3}\n" + graph_text(), r, "b.yaml");
  run_graph(every, r, quiet_into(dir.path() + "/a"));
  run_graph(third, r, quiet_into(dir.path() + "/b"));
  const auto a = read_metrics(dir.path() + "/a/metrics.jsonl"), b = read_metrics(dir.path() + "/b/metrics.jsonl");
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (std::size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(a[e].at("mse"), b[e].at("mse")) << "epoch " << e + 1;
    EXPECT_EQ(a[e].at("lr"), b[e].at("lr"));
  }
}

// A loss that overflows (Adam at lr 1e30: weights near 1e30 after one step)
// stops the run with "not finite", also when only every 1000th step is
// checked: each epoch's last step always is.
TEST(Run, DivergingLossIsAnErrorAtAnyLogEvery) {
  for (const char* every : {"1", "1000"}) {
    test::TempDir dir;
    Registry r = test::builtin_registry();
    const Graph g = load(dir, std::string("execution: {log_every: ") + every + "}\n" +
                                  graph_text("", "train: {epochs: 2, objective: mse, optimizer: {type: adam, lr: 1.0e+30}}\n"),
                         r);
    try {
      run_graph(g, r, quiet_into(dir.path() + "/run"));
      FAIL() << "no error at log_every " << every;
    } catch (const NodeError& e) {
      EXPECT_EQ(e.node_id(), "mse");
      EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir.path() + "/run/last.pt")) << every;  // no checkpoint of diverged weights
  }
}

}  // namespace umrflow

namespace umrflow {

// A run on the CPU says so when libtorch's matrix products run on Debian's
// reference BLAS (started here with that BLAS found first), and says
// nothing when an optimised BLAS is the system's (tools/setup.sh installs
// OpenBLAS).
TEST(Run, ReferenceBlasIsPointedOut) {
  const std::string lib = "/usr/lib/x86_64-linux-gnu";
  if (!fs::exists(lib + "/blas/libblas.so.3") || !fs::exists(lib + "/lapack/liblapack.so.3"))
    GTEST_SKIP() << "no reference BLAS under " << lib;
  test::TempDir dir;
  const std::string graph = dir.write("g.yaml", graph_text("", "train: {epochs: 1, objective: mse, optimizer: {type: adam, lr: 0.05}}\n"));
  const std::string run = std::string(UMRFLOW_BINARY) + " run " + graph + " --quiet --out ";
  std::string out;
  ASSERT_EQ(test::run_command("LD_LIBRARY_PATH=" + lib + "/blas:" + lib + "/lapack " + run + dir.path() + "/ref 2>&1", &out), 0) << out;
  EXPECT_NE(test::read_file(dir.path() + "/ref/log.txt").find("run on the reference BLAS (" + lib + "/blas/libblas.so"), std::string::npos)
      << test::read_file(dir.path() + "/ref/log.txt");
  if (fs::canonical(lib + "/libblas.so.3").string().find("/blas/") != std::string::npos) return;  // the system's is the reference
  ASSERT_EQ(test::run_command(run + dir.path() + "/own 2>&1", &out), 0) << out;
  EXPECT_EQ(test::read_file(dir.path() + "/own/log.txt").find("reference BLAS"), std::string::npos);
}

}  // namespace umrflow
