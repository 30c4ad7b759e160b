#include <gtest/gtest.h>

#include "test_util.h"
#include "umrflow/graph.h"
#include "umrflow/registry.h"

namespace umrflow {

namespace {

const std::string kEval = R"(umrflow: 1
name: eval
modules:
  net: {type: model.channel_mix, in_channels: 2}
data:
  - {id: source, type: synthetic.tensors, count: 8, shape: [2, 4, 4, 4]}
  - {id: batch, type: batch, in: source, size: 2}
step:
  - {id: pred, type: call, module: net, in: batch.image}
  - {id: mse, type: loss.mse, in: [pred, batch.target]}
)";

std::string train_text(const std::string& validate) {
  return "umrflow: 1\nname: stage\nmodules:\n  net: {type: model.channel_mix, in_channels: 2}\n"
         "data:\n  - {id: source, type: synthetic.tensors, count: 8, shape: [2, 4, 4, 4]}\n"
         "  - {id: batch, type: batch, in: source, size: 2}\n"
         "step:\n  - {id: pred, type: call, module: net, in: batch.image}\n  - {id: mse, type: loss.mse, in: [pred, batch.target]}\n"
         "train:\n  epochs: 2\n  objective: mse\n" + validate;
}

/// The diagnostics of load_graph on `file` ("" when it loads).
Diagnostics problems(const std::string& file, const LoadChecks& checks = {}) {
  Registry r = test::builtin_registry();
  try {
    load_graph(file, {}, r, checks);
  } catch (const GraphError& e) {
    return e.diagnostics();
  }
  return {};
}

void expect_at(const Diagnostics& d, const std::string& fragment, const std::string& file, const std::string& text,
               const std::string& needle) {
  const Diagnostic* diag = test::find_diagnostic(d, fragment);
  ASSERT_NE(diag, nullptr) << "no '" << fragment << "' in:\n" << d.str();
  EXPECT_EQ(diag->where.file, file) << diag->str();
  const auto [line, col] = test::position_of(text, needle);
  EXPECT_EQ(diag->where.line, line) << diag->str();
  EXPECT_EQ(diag->where.column, col) << diag->str();
}

}  // namespace

// A training graph with a correct validation graph loads with that graph built.
TEST(LoadGraph, ValidationGraphIsBuiltUpFront) {
  test::TempDir dir;
  dir.write("eval.yaml", kEval);
  const std::string file = dir.write("stage.yaml", train_text("  validate: {graph: eval.yaml, metric: mse, mode: min}\n"));
  Registry r = test::builtin_registry();
  const Graph g = load_graph(file, {}, r);
  ASSERT_NE(g.validation, nullptr);
  EXPECT_EQ(g.validation->name, "eval");
}

// A misspelled validation metric fails at validation, at the metric, naming
// what the validation graph does produce.
TEST(LoadGraph, MisspelledMetricIsLocated) {
  test::TempDir dir;
  dir.write("eval.yaml", kEval);
  const std::string text = train_text("  validate: {graph: eval.yaml, metric: mes, mode: min}\n");
  const std::string file = dir.write("stage.yaml", text);
  const Diagnostics d = problems(file);
  expect_at(d, "train.validate.metric 'mes' names no step node of the validation graph (did you mean 'mse'", file, text, "mes,");
}

// A broken validation graph is reported at `graph:` and with its own located problems.
TEST(LoadGraph, BrokenValidationGraphIsLocated) {
  test::TempDir dir;
  const std::string eval = kEval + "  - {id: bad, type: loss.mse, in: [pred, batch.targte]}\n";
  const std::string eval_file = dir.write("eval.yaml", eval);
  const std::string text = train_text("  validate: {graph: eval.yaml, metric: mse, mode: min}\n");
  const std::string file = dir.write("stage.yaml", text);
  const Diagnostics d = problems(file);
  expect_at(d, "train.validate.graph '" + eval_file + "' does not validate", file, text, "eval.yaml");
  expect_at(d, "needs key 'targte'", eval_file, eval, "batch.targte");
}

// A validation graph whose plugin is missing fails at that plugin's entry.
TEST(LoadGraph, MissingPluginOfValidationGraphIsLocated) {
  test::TempDir dir;
  const std::string eval = "plugins: [lib/libnowhere.so]\n" + kEval;
  const std::string eval_file = dir.write("eval.yaml", eval);
  const std::string file = dir.write("stage.yaml", train_text("  validate: {graph: eval.yaml, metric: mse, mode: min}\n"));
  const Diagnostics d = problems(file);
  expect_at(d, "plugin '" + dir.path() + "/lib/libnowhere.so' does not exist", eval_file, eval, "lib/libnowhere.so");
}

// An init.from that does not exist fails at `from:`, unless an earlier stage
// of the same validation writes it, or the command loads no weights.
TEST(LoadGraph, MissingInitCheckpointIsLocated) {
  test::TempDir dir;
  std::string text = train_text("");
  text.replace(text.find("in_channels: 2}"), 15, "in_channels: 2, init: {from: runs/stage0/last.pt}}");
  const std::string file = dir.write("next.yaml", text);
  expect_at(problems(file), "module 'net': init checkpoint 'runs/stage0/last.pt' does not exist", file, text, "runs/stage0");
  LoadChecks after;
  after.produced = {"runs/stage0/last.pt"};
  EXPECT_TRUE(problems(file, after).empty());
  LoadChecks no_weights;
  no_weights.init_exists = false;
  EXPECT_TRUE(problems(file, no_weights).empty());
  Registry r = test::builtin_registry();
  std::string earlier = train_text("");
  earlier.replace(earlier.find("name: stage"), 11, "name: stage0");
  const auto written = checkpoints_written(load_graph(dir.write("stage0.yaml", earlier), {}, r));
  EXPECT_TRUE(written.count("runs/stage0/last.pt"));
  EXPECT_TRUE(written.count("runs/stage0/epoch_0002.pt"));
  EXPECT_FALSE(written.count("runs/stage0/epoch_0003.pt"));
}

}  // namespace umrflow
