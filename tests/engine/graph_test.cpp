#include <gtest/gtest.h>

#include "test_util.h"
#include "umrflow/doc.h"
#include "umrflow/graph.h"

namespace umrflow {

using test::find_diagnostic;
using test::position_of;

namespace {

const std::string kValid = R"(umrflow: 1
name: t
seed: 3
modules:
  net: {type: model.channel_mix, in_channels: 2}
data:
  - {id: source, type: synthetic.tensors, count: 8, shape: [2, 4, 4, 4]}
  - {id: noise, type: tensor.gaussian_noise, in: source, std: 0.1}
  - {id: batch, type: batch, in: noise, size: 2}
step:
  - {id: total, type: loss.sum, in: [mse]}
  - {id: pred, type: call, module: net, in: batch.image}
  - {id: mse, type: loss.mse, in: [pred, batch.target]}
execution: {prefetch: 4}
train: {epochs: 2, objective: total}
)";

std::string replace(std::string text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return text.replace(pos, from.size(), to);
}

/// Expects a diagnostic containing `fragment` at the position of `needle` in `yaml`.
void expect_error_at(const std::string& yaml, const std::string& fragment, const std::string& needle, int nth = 0) {
  Registry r = test::builtin_registry();
  Diagnostics d = test::validate_text(yaml, r);
  const Diagnostic* diag = find_diagnostic(d, fragment);
  ASSERT_NE(diag, nullptr) << "no diagnostic containing '" << fragment << "' in:\n" << d.str();
  auto [line, col] = position_of(yaml, needle, nth);
  EXPECT_EQ(diag->where.line, line) << diag->str();
  EXPECT_EQ(diag->where.column, col) << diag->str();
  EXPECT_NE(diag->where.file.find("graph.yaml"), std::string::npos);
}

}  // namespace

// The reference graph is valid; the step plane comes out in topological order
// and ranks grow by one at the batch node.
TEST(Graph, ValidGraphIsOrderedAndTyped) {
  Registry r = test::builtin_registry();
  test::TempDir dir;
  const std::string path = dir.write("g.yaml", kValid);
  Graph g = build_graph(load_graph_doc(path), path, r);
  ASSERT_EQ(g.step.size(), 3u);
  EXPECT_EQ(g.step[0].id, "pred");
  EXPECT_EQ(g.step[1].id, "mse");
  EXPECT_EQ(g.step[2].id, "total");
  EXPECT_EQ(g.data.front().provides.at("image"), 4);
  EXPECT_EQ(g.batch().provides.at("image"), 5);
  EXPECT_EQ(g.find("pred")->provides.at("pred"), -1);
  EXPECT_EQ(g.train.epochs, 2);
  EXPECT_EQ(g.seed, 3u);
}

// Unknown top-level keys and unknown parameters come with the nearest valid name.
TEST(Graph, UnknownKeys) {
  std::string y = replace(kValid, "seed: 3", "sed: 3");
  expect_error_at(y, "unknown top-level key 'sed' (did you mean 'seed'", "sed");
  y = replace(kValid, "std: 0.1", "sdt: 0.1");
  expect_error_at(y, "unknown parameter 'sdt' (did you mean 'std'", "sdt");
  y = replace(kValid, "prefetch: 4", "prefech: 4");
  expect_error_at(y, "execution: unknown parameter 'prefech' (did you mean 'prefetch'", "prefech");
}

// Unknown node types come with the nearest registered names.
TEST(Graph, UnknownNodeType) {
  std::string y = replace(kValid, "tensor.gaussian_noise", "tensor.gausian_noise");
  expect_error_at(y, "unknown node type 'tensor.gausian_noise' (did you mean 'tensor.gaussian_noise'", "tensor.gausian_noise");
}

// Wrong parameter types and out-of-range values point at the value.
TEST(Graph, ParameterTypesAndRanges) {
  std::string y = replace(kValid, "std: 0.1", "std: -1");
  expect_error_at(y, "'std' is -1, outside its range (float >= 0)", "-1");
  y = replace(kValid, "count: 8", "count: many");
  expect_error_at(y, "'count' expects int >= 1, got 'many'", "many");
  y = replace(kValid, "size: 2}", "size: [2]}");
  expect_error_at(y, "'size' expects int >= 1, got a sequence", "[2]}");
}

// A port without an input is reported at the node; an input naming no node
// is reported at the reference, with the nearest ids.
TEST(Graph, MissingAndDanglingInputs) {
  std::string y = replace(kValid, "in: [pred, batch.target]", "in: [pred]");
  expect_error_at(y, "missing input for port 'target'", "[pred]}");
  y = replace(kValid, "in: [pred, batch.target]", "in: [prd, batch.target]");
  expect_error_at(y, "input 'prd' names no node (did you mean 'pred'", "prd");
  y = replace(kValid, "in: source,", "in: sourec,");
  expect_error_at(y, "input 'sourec' names no node (did you mean 'source'", "sourec");
}

// A cycle is reported with the chain of ids around it.
TEST(Graph, Cycles) {
  std::string y = replace(kValid, "in: [mse]", "in: [mse, total]");
  expect_error_at(y, "cycle: total -> total", "total]");
  y = replace(kValid, "in: [pred, batch.target]", "in: [pred, total]");
  Registry r = test::builtin_registry();
  Diagnostics d = test::validate_text(y, r);
  ASSERT_NE(find_diagnostic(d, "cycle: "), nullptr) << d.str();
}

// A port that needs a key its producer lacks, or has with another rank, is
// reported at the edge.
TEST(Graph, PortKeyAndRankMismatch) {
  std::string y = replace(kValid, "in: [pred, batch.target]", "in: [pred, batch]");
  // Whole-packet input to `pred` port needs key `pred`; the batch has only image and target.
  y = replace(y, "in: [pred, batch]", "in: [batch, batch]");
  expect_error_at(y, "port 'pred' needs key 'pred', but 'batch' does not provide it", "batch, batch");
  y = replace(kValid, "in: [pred, batch.target]", "in: [pred, batch.taget]");
  expect_error_at(y, "needs key 'taget', but 'batch' does not provide it (did you mean 'target'", "batch.taget");
  // loss.sum needs scalar `loss` (rank 0); pred provides `pred` (rank any) and a call output
  // is not a loss: bind the sum to the batch's image instead to get a rank clash.
  y = replace(kValid, "in: [mse]", "in: [batch.image]");
  expect_error_at(y, "port 'terms' needs 'loss' of rank 0, but 'batch' provides 'image' with rank 5", "batch.image]");
}

// Data-plane shape: one source, a chain, a batch at the end.
TEST(Graph, DataPlaneShape) {
  std::string y = replace(kValid, "  - {id: batch, type: batch, in: noise, size: 2}\n", "");
  y = replace(y, "batch.image", "noise.image");
  Registry r = test::builtin_registry();
  Diagnostics d = test::validate_text(y, r);
  EXPECT_NE(find_diagnostic(d, "exactly one `batch` node"), nullptr) << d.str();
  y = replace(kValid, "in: batch.image", "in: noise.image");
  expect_error_at(y, "step nodes read the data plane only through its batch node 'batch', not 'noise'", "noise.image");
  y = replace(kValid, "type: loss.sum", "type: tensor.random_flip");
  expect_error_at(y, "'tensor.random_flip' is a sample node and belongs under `data:`", "tensor.random_flip");
}

// Modules: a call of an undeclared module, a frozen module without weights,
// and an objective that is not a step node.
TEST(Graph, ModulesAndObjective) {
  std::string y = replace(kValid, "module: net", "module: nett");
  expect_error_at(y, "calls module 'nett', which is not declared under `modules:` (did you mean 'net'", "nett");
  y = replace(kValid, "in_channels: 2}", "in_channels: 2, frozen: true}");
  expect_error_at(y, "module 'net' is frozen but has no initial weights", "net:");
  y = replace(kValid, "objective: total", "objective: totl");
  expect_error_at(y, "train.objective 'totl' is not a step node (did you mean 'total'", "totl");
  y = replace(kValid, "objective: total", "objective: pred");
  expect_error_at(y, "train.objective 'pred' provides no scalar `loss`", "pred}");
}

// Every problem of a graph is reported in one pass, not just the first.
TEST(Graph, AllErrorsAtOnce) {
  std::string y = replace(kValid, "seed: 3", "sed: 3");
  y = replace(y, "std: 0.1", "std: -2");
  y = replace(y, "module: net", "module: nett");
  y = replace(y, "in: [pred, batch.target]", "in: [prd, batch.target]");
  y = replace(y, "epochs: 2", "epochs: 0");
  Registry r = test::builtin_registry();
  Diagnostics d = test::validate_text(y, r);
  EXPECT_GE(d.size(), 5u) << d.str();
  for (const char* f : {"'sed'", "'std' is -2", "'nett'", "'prd'", "'epochs' is 0"})
    EXPECT_NE(find_diagnostic(d, f), nullptr) << f << "\n" << d.str();
}

// Overrides are applied before validation, and their errors point at the override.
TEST(Graph, OverridesBeforeValidation) {
  Registry r = test::builtin_registry();
  test::TempDir dir;
  const std::string path = dir.write("g.yaml", kValid);
  Graph g = build_graph(load_graph_doc(path, {"train.epochs=5", "data.noise.std=0.3"}), path, r);
  EXPECT_EQ(g.train.epochs, 5);
  EXPECT_DOUBLE_EQ(g.data[1].params.get_number("std"), 0.3);
  try {
    build_graph(load_graph_doc(path, {"data.noise.std=-4"}), path, r);
    FAIL();
  } catch (const GraphError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u);
    EXPECT_EQ(e.diagnostics().items()[0].where.file, "<--set data.noise.std=-4>");
    EXPECT_EQ(e.diagnostics().items()[0].where.column, 16);
  }
  // Swapping a node's type is an override like any other.
  Graph swapped = build_graph(load_graph_doc(path, {"data.noise.type=tensor.random_flip", "data.noise.std=null"}), path, r);
  EXPECT_EQ(swapped.data[1].type, "tensor.random_flip");
}

// The Graphviz export has both planes, every edge and the module.
TEST(Graph, DotExport) {
  Registry r = test::builtin_registry();
  test::TempDir dir;
  const std::string path = dir.write("g.yaml", kValid);
  const std::string dot = graph_to_dot(build_graph(load_graph_doc(path), path, r));
  EXPECT_NE(dot.find("subgraph cluster_data"), std::string::npos);
  EXPECT_NE(dot.find("subgraph cluster_step"), std::string::npos);
  EXPECT_NE(dot.find("\"batch\" -> \"mse\" [label=\"target\"]"), std::string::npos);
  EXPECT_NE(dot.find("\"module:net\" -> \"pred\""), std::string::npos);
  EXPECT_NE(dot.find("\"source\" -> \"noise\""), std::string::npos);
}

// A step node written under `data:` (a mis-indented `step:`) is reported at
// its type, not followed into the ports a data node would have.
TEST(Graph, StepNodeUnderDataIsReported) {
  const std::string y = replace(kValid, "  - {id: batch, type: batch, in: noise, size: 2}",
                                "  - {id: early, type: call, module: net, in: noise}\n  - {id: batch, type: batch, in: early, size: 2}");
  expect_error_at(y, "node 'early': 'call' belongs under `step:`", "call, module");
}

// A duplicate id that reads itself is reported once and does not loop.
TEST(Graph, DuplicateIdReadingItself) {
  const std::string y = replace(kValid, "  - {id: batch, type: batch, in: noise, size: 2}",
                                "  - {id: noise, type: tensor.gaussian_noise, in: noise}\n  - {id: batch, type: batch, in: noise, size: 2}");
  expect_error_at(y, "duplicate node id 'noise'", "{id: noise", 1);
}

// A 40,000-node data chain listed in reverse validates (no recursion, no
// quadratic lookups), and so does a 2,000-node step chain listed in reverse.
TEST(Graph, LongChainsListedInReverse) {
  const int n = 40000;
  std::string y = "umrflow: 1\ndata:\n";
  for (int i = n - 1; i >= 0; --i) {
    if (i == 0) y += "  - {id: n0, type: synthetic.tensors, count: 4, shape: [1, 4]}\n";
    else if (i == n - 1) y += "  - {id: n" + std::to_string(i) + ", type: batch, in: n" + std::to_string(i - 1) + ", size: 2}\n";
    else y += "  - {id: n" + std::to_string(i) + ", type: tensor.gaussian_noise, in: n" + std::to_string(i - 1) + "}\n";
  }
  Registry r = test::builtin_registry();
  Diagnostics d = test::validate_text(y, r);
  EXPECT_TRUE(d.empty()) << d.str().substr(0, 500);

  const int m = 2000;
  std::string steps = "step:\n";
  for (int i = m - 1; i >= 1; --i) steps += "  - {id: s" + std::to_string(i) + ", type: loss.sum, in: [s" + std::to_string(i - 1) + "]}\n";
  steps += "  - {id: s0, type: loss.mse, in: [pred, batch.target]}\n  - {id: pred, type: call, module: net, in: batch.image}\n";
  std::string g = kValid.substr(0, kValid.find("step:")) + steps + "train: {epochs: 1, objective: s" + std::to_string(m - 1) + "}\n";
  Graph built = build_graph(parse_yaml(g, "graph.yaml"), "graph.yaml", r);
  ASSERT_EQ(built.step.size(), static_cast<std::size_t>(m + 1));
  EXPECT_EQ(built.step.front().id, "pred");
  EXPECT_EQ(built.step.back().id, "s" + std::to_string(m - 1));
}

// Data-plane settings live in `execution:`, valid in every graph; their old
// places (train.prefetch, a top-level device) get an error that says where
// they moved, and a prefetch below the batch size is refused without `train:`.
TEST(Graph, ExecutionSettings) {
  Registry r = test::builtin_registry();
  std::string y = replace(kValid, "execution: {prefetch: 4}\ntrain: {epochs: 2, objective: total}", "train: {epochs: 2, objective: total, prefetch: 4}");
  expect_error_at(y, "train.prefetch moved to execution.prefetch", "prefetch");
  y = replace(kValid, "seed: 3", "seed: 3\ndevice: cpu");
  expect_error_at(y, "`device` moved into `execution:` (write `execution: {device: cpu}`)", "device");
  y = replace(kValid, "execution: {prefetch: 4}\ntrain: {epochs: 2, objective: total}", "execution: {prefetch: 1}");
  expect_error_at(y, "execution.prefetch (1) must be at least the batch size (2)", "prefetch: 1");
  Graph g = build_graph(parse_yaml(replace(kValid, "prefetch: 4", "prefetch: 4, device: auto, autocast: bf16"), "g.yaml"), "g.yaml", r);
  EXPECT_EQ(g.execution.device, "auto");
  EXPECT_EQ(g.execution.autocast, "bf16");
  EXPECT_EQ(g.execution.threads, 0);  // the declared default
  EXPECT_EQ(g.train.optimizer, "adamw");
  EXPECT_EQ(g.train.lr, 1e-3);
}

}  // namespace umrflow
