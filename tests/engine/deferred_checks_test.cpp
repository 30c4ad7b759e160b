#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "deferred_checks.h"
#include "instance.h"
#include "test_util.h"
#include "umrflow/diagnostics.h"
#include "umrflow/doc.h"
#include "umrflow/run.h"
#include "umrflow/step_checks.h"

namespace umrflow {

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A graph whose only step node is loss.cross_entropy on the batch's `image` (logits) and `target` (labels).
Graph cross_entropy_graph(const test::TempDir& dir, const Registry& r) {
  const std::string path = dir.write("ce.yaml",
                                     "umrflow: 1\nname: ce\nseed: 1\ndata:\n"
                                     "  - {id: source, type: synthetic.tensors, count: 4, shape: [3, 2, 3]}\n"
                                     "  - {id: batch, type: batch, in: source, size: 2}\n"
                                     "step:\n  - {id: ce, type: loss.cross_entropy, in: [batch.image, batch.target]}\n");
  return build_graph(load_graph_doc(path), path, r);
}

Packet labelled_batch(const torch::Tensor& labels) {
  torch::manual_seed(2);
  Packet p;
  p.tensors["image"] = torch::randn({2, 3, 2, 3}, torch::kFloat64);
  p.tensors["target"] = labels;
  p.samples = {{0, "case_a", {}}, {1, "case_b", {}}};
  return p;
}

/// ce's loss on `rejected` labels from `deferred` (batch `index`), which must equal the loss with the rejected pixels
/// ignored (`ignored`); an instance that reads its checks at once refuses `rejected`.
double deferred_loss_equals_ignored(const Graph& g, const Instance& deferred, const torch::Tensor& rejected, const torch::Tensor& ignored,
                                    std::int64_t index) {
  const Instance immediate(g, torch::kCPU);
  EXPECT_THROW(immediate.run_step(labelled_batch(rejected), 0, 0, true), NodeError);
  const double expected = immediate.run_step(labelled_batch(ignored), 0, 0, true).at("ce").at("loss").item<double>();
  const double got = deferred.run_step(labelled_batch(rejected), 0, index, true).at("ce").at("loss").item<double>();
  EXPECT_NEAR(got, expected, 1e-12);
  return got;
}

}  // namespace

// Outside a deferral scope a failed check throws its message at once; a passing one never builds the message.
TEST(StepChecks, ReadAtOnceOutsideADeferral) {
  int built = 0;
  const auto message = [&] { return ++built, std::string("value out of range"); };
  EXPECT_NO_THROW(check_on_host(torch::tensor({false, false}), message));
  EXPECT_EQ(built, 0);
  try {
    check_on_host(torch::tensor({false, true}), message);
    FAIL() << "a failed check did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "value out of range");
  }
  EXPECT_NO_THROW(check_on_host(torch::zeros({0}, torch::kBool), message));  // nothing to check
  const Packet batch;
  const DeferralScope none(nullptr, "n", "t", batch, 0);  // a null sink keeps the immediate read
  EXPECT_THROW(check_on_host(torch::tensor(true), message), std::runtime_error);
}

// In a deferral scope checks are kept unread; read() throws a NodeError for the first failed one, naming its node,
// samples and batch index, forgets them all, and the scope's end restores the immediate read.
TEST(StepChecks, KeptUntilReadThenNamedWithTheirBatch) {
  DeferredChecks sink;
  int built = 0;
  const Packet batch = labelled_batch(torch::zeros({2, 1, 2, 3}, torch::kLong));
  {
    const DeferralScope scope(&sink, "ce", "loss.cross_entropy", batch, 7);
    EXPECT_NO_THROW(check_on_host(torch::tensor({0, 0}), [&] { return ++built, std::string("first"); }));
    EXPECT_NO_THROW(check_on_host(torch::tensor({0, 1}), [&] { return ++built, std::string("second fails"); }));
    EXPECT_NO_THROW(check_on_host(torch::tensor(1), [&] { return ++built, std::string("third fails too"); }));
  }
  EXPECT_EQ(sink.size(), 3u);
  EXPECT_EQ(built, 0);
  try {
    sink.read();
    FAIL() << "a failed kept check was not reported";
  } catch (const NodeError& e) {
    EXPECT_EQ(e.node_id(), "ce");
    EXPECT_EQ(e.sample(), batch.sample_names());
    EXPECT_TRUE(contains(e.what(), "second fails")) << e.what();
    EXPECT_TRUE(contains(e.what(), "batch 7")) << e.what();
  }
  EXPECT_EQ(built, 1);
  EXPECT_EQ(sink.size(), 0u);
  EXPECT_NO_THROW(sink.read());
  EXPECT_THROW(check_on_host(torch::tensor(true), [] { return std::string("now"); }), std::runtime_error);
}

// cross_entropy with deferred checks (as on an accelerator): a label beyond the classes is left out of the loss, which
// equals the loss with that pixel ignored, and the kept check names the node, the label and the batch when read.
TEST(StepChecks, CrossEntropyDefersItsLabelCheck) {
  const Registry r = test::builtin_registry();
  test::TempDir dir;
  const Graph g = cross_entropy_graph(dir, r);
  const torch::Tensor labels = torch::tensor({1, 2, 3, 0, 1, 2, 3, 3, 2, 1, 0, 1}, torch::kLong).view({2, 1, 2, 3});
  torch::Tensor bad = labels.clone(), ignored = labels.clone();
  bad[0][0][0][1] = 9;  // beyond the 3 classes (labels 1..3)
  ignored[0][0][0][1] = 0;
  const Instance deferred(g, torch::kCPU, /*defer_checks=*/true);
  const double got = deferred_loss_equals_ignored(g, deferred, bad, ignored, 3);
  const Instance plain(g, torch::kCPU);
  EXPECT_GT(std::abs(got - plain.run_step(labelled_batch(labels), 0, 0, true).at("ce").at("loss").item<double>()), 1e-6);
  try {
    deferred.read_checks();
    FAIL() << "the bad label was never reported";
  } catch (const NodeError& e) {
    EXPECT_EQ(e.node_id(), "ce");
    EXPECT_TRUE(contains(e.what(), "label 9 is outside 1..3")) << e.what();
    EXPECT_TRUE(contains(e.what(), "batch 3")) << e.what();
    EXPECT_TRUE(contains(e.what(), "case_a")) << e.what();
  }
  // Good labels leave nothing to report; a stopped epoch's checks can be dropped unread.
  deferred.run_step(labelled_batch(labels), 0, 4, true);
  EXPECT_NO_THROW(deferred.read_checks());
  deferred.run_step(labelled_batch(bad), 0, 5, true);
  deferred.clear_checks();
  EXPECT_NO_THROW(deferred.read_checks());
}

// Labels that are not whole numbers are left out under deferral too, and reported when read.
TEST(StepChecks, CrossEntropyDefersFractionalLabels) {
  const Registry r = test::builtin_registry();
  test::TempDir dir;
  const Graph g = cross_entropy_graph(dir, r);
  const torch::Tensor labels = torch::tensor({1, 2, 3, 0, 1, 2, 3, 3, 2, 1, 0, 1}, torch::kFloat64).view({2, 1, 2, 3});
  torch::Tensor fractional = labels.clone(), ignored = labels.clone();
  fractional[1][0][0][2] = 2.5;
  ignored[1][0][0][2] = 0;
  const Instance deferred(g, torch::kCPU, /*defer_checks=*/true);
  deferred_loss_equals_ignored(g, deferred, fractional, ignored, 1);
  try {
    deferred.read_checks();
    FAIL() << "the fractional label was never reported";
  } catch (const NodeError& e) {
    EXPECT_TRUE(contains(e.what(), "whole numbers")) << e.what();
  }
}

// A training run that defers its checks (as on an accelerator, here forced on the CPU) reports a kept check, naming
// the node and the batch index, and writes no checkpoint from that epoch.
TEST(StepChecks, RunReportsAKeptCheckAtTheLoggedStep) {
  const Registry r = test::builtin_registry();
  test::TempDir dir;
  // synthetic.tensors' target is a mix of channels: not a class map.
  const std::string path = dir.write("g.yaml",
                                     "umrflow: 1\nname: ce_run\nseed: 3\nmodules:\n  net: {type: model.channel_mix, in_channels: 2}\n"
                                     "execution: {log_every: 3}\ndata:\n"
                                     "  - {id: source, type: synthetic.tensors, count: 16, shape: [2, 4, 4]}\n"
                                     "  - {id: batch, type: batch, in: source, size: 4}\n"
                                     "step:\n  - {id: pred, type: call, module: net, in: batch.image}\n"
                                     "  - {id: ce, type: loss.cross_entropy, in: [pred, batch.target]}\n"
                                     "train: {epochs: 2, objective: ce, optimizer: {type: adam, lr: 0.05}}\n");
  const Graph g = build_graph(load_graph_doc(path), path, r);
  RunOptions o;
  o.run_dir = dir.path() + "/run";
  o.quiet = true;
  o.threads = 1;
  o.defer_checks = true;
  try {
    run_graph(g, r, o);
    FAIL() << "the run did not report the target";
  } catch (const NodeError& e) {
    EXPECT_EQ(e.node_id(), "ce");
    EXPECT_TRUE(contains(e.what(), "whole numbers")) << e.what();
    EXPECT_TRUE(contains(e.what(), "batch 0 of the epoch")) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(o.run_dir + "/last.pt"));
  EXPECT_FALSE(std::filesystem::exists(o.run_dir + "/epoch_0001.pt"));
}

// On CUDA an Instance defers by default: a bad label neither stops the step nor trips a device-side assertion, and
// read_checks() reports it (tools/gpu_check.sh runs this; skipped without a GPU).
TEST(StepChecks, CudaInstanceDefersByDefault) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const Registry r = test::builtin_registry();
  test::TempDir dir;
  const Graph g = cross_entropy_graph(dir, r);
  const torch::Device cuda("cuda:0");
  const Instance inst(g, cuda);
  torch::Tensor bad = torch::tensor({1, 2, 3, 0, 1, 2, 3, 3, 2, 1, 0, 1}, torch::kLong).view({2, 1, 2, 3});
  bad[1][0][1][2] = -4;
  Packet batch = labelled_batch(bad);
  for (auto& [k, t] : batch.tensors) t = t.to(cuda);
  const torch::Tensor loss = inst.run_step(batch, 0, 2, true).at("ce").at("loss");
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  try {
    inst.read_checks();
    FAIL() << "the bad label was never reported";
  } catch (const NodeError& e) {
    EXPECT_TRUE(contains(e.what(), "label -4 is outside")) << e.what();
  }
}

}  // namespace umrflow
