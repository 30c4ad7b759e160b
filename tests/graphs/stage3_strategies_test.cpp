#include <gtest/gtest.h>

#include <cstring>

#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include <atomic>
#include <memory>

#include "instance.h"
#include "test_paths.h"
#include "test_util.h"
#include "umrflow/doc.h"

namespace umrflow {

namespace {

const std::string kStage3 = std::string(UMRFLOW_SOURCE_DIR) + "/graphs/phantoms/stage3.yaml";
const std::string kAccumulate = "train.accumulate={groups: subsets.group, slice: [subsets.incomplete]}";

/// The phantom stage-3 graph at a tiny width, untrained, no validation.
std::vector<std::string> stage3_overrides(const std::vector<std::string>& extra) {
  std::vector<std::string> o = {"data.cases.root=" + test::phantom_root(), "data.cases.split=" + test::phantom_root() + "/split.yaml",
                                "modules.net.init=null", "train.validate=null"};
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}

Graph stage3(const Registry& r, const std::vector<std::string>& extra) {
  return build_graph(load_graph_doc(kStage3, stage3_overrides(extra)), kStage3, r);
}

Packet make_batch(std::int64_t b, std::int64_t side) {
  torch::manual_seed(11);
  Packet p;
  p.tensors["image"] = torch::randn({b, 4, side, side, side});
  p.tensors["label"] = (torch::rand({b, 3, side, side, side}) > 0.7).to(torch::kFloat);
  for (std::int64_t i = 0; i < b; ++i) p.samples.push_back({i, "case_" + std::to_string(i), {}});
  return p;
}

double max_abs(const torch::Tensor& t) { return t.numel() ? t.abs().max().item<double>() : 0.0; }

enum class Strategy { per_group_backward, batched_bn };

/// Scalars, gradients and buffers of one step: one backward over the groups
/// run one by one (the reference), against per-group backward
/// (train.accumulate) or against all groups in one pass with BatchNorm
/// statistics per group (group_bn: batched), from the same weights.
/// In float64 (`exact`) the tolerances shrink to 1e-10: the strategies are the
/// same computation, not an approximation of it.
void expect_same_step(const std::vector<std::string>& variant, std::int64_t b, Strategy strategy = Strategy::per_group_backward,
                      bool exact = false) {
  const Registry r = test::builtin_registry();
  std::vector<std::string> base = variant, with = variant;
  base.push_back("train.accumulate=null");
  if (strategy == Strategy::per_group_backward) with.push_back(kAccumulate);
  else with.insert(with.end(), {"train.accumulate=null", "modules.net.group_bn=batched"});
  const Graph one = stage3(r, base), other = stage3(r, with);
  Instance ref(one, torch::kCPU), acc(other, torch::kCPU);
  ref.set_training(true);
  acc.set_training(true);
  Packet batch = make_batch(b, 16);
  if (exact) {
    for (const Instance* inst : {&ref, &acc})
      for (auto& [name, t] : inst->weights())
        if (t.is_floating_point()) t.set_data(t.to(torch::kDouble));
    for (auto& [key, t] : batch.tensors) t = t.to(torch::kDouble);
  }
  const double tol = exact ? 1e-10 : 1e-5;
  auto outs_ref = ref.run_step(batch, 0, 0, true);
  outs_ref.at("total").at("loss").backward();
  std::map<std::string, Packet> outs_acc;
  if (strategy == Strategy::batched_bn) {
    outs_acc = acc.run_step(batch, 0, 0, true);
    outs_acc.at("total").at("loss").backward();
  } else {
    ASSERT_EQ(other.train.accumulate_dependent,
              (std::vector<std::string>{"missing", "prediction_consistency", "feature_consistency", "total"}));
    int passes = 0;
    outs_acc = acc.run_step_grouped(batch, 0, 0, [&](const torch::Tensor& loss, const std::string&) {
      ++passes;
      loss.backward();
    });
    const bool shared_backward = std::find(variant.begin(), variant.end(), "modules.net.freeze_decoder=false") != variant.end();
    EXPECT_EQ(passes, 7 + (shared_backward ? 1 : 0));  // 7 pairs, plus the complete path when the decoder learns
  }
  for (const char* node : {"total", "dice_full", "prediction_consistency", "feature_consistency"}) {
    const double a = outs_ref.at(node).at("loss").item<double>(), c = outs_acc.at(node).at("loss").item<double>();
    EXPECT_NEAR(c, a, tol / 10 * std::abs(a) + 1e-12) << node;
  }
  const auto w_ref = ref.weights(), w_acc = acc.weights();
  ASSERT_EQ(w_ref.size(), w_acc.size());
  int grads = 0;
  for (std::size_t i = 0; i < w_ref.size(); ++i) {
    const auto& [name, t] = w_ref[i];
    const torch::Tensor& u = w_acc[i].second;
    ASSERT_EQ(name, w_acc[i].first);
    EXPECT_EQ(t.grad().defined(), u.grad().defined()) << name;
    if (t.grad().defined() && u.grad().defined()) {
      ++grads;
      EXPECT_LE(max_abs(t.grad() - u.grad()), tol * max_abs(t.grad()) + 1e-12) << name;
    }
    if (!t.is_floating_point()) EXPECT_TRUE(torch::equal(t, u)) << name;  // num_batches_tracked
    else if (!t.requires_grad()) EXPECT_LE(max_abs(t - u), tol / 10 * max_abs(t) + 1e-12) << name;  // running statistics
  }
  EXPECT_GT(grads, 20);
}

/// Counts the bytes the CPU allocator hands out and their peak. (No
/// `override`: libtorch 1.13 declares a const allocate, 2.x a non-const one
/// and a copy_data; each version overrides the members it declares.)
class CountingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) { return static_cast<const CountingAllocator*>(this)->allocate(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }
  c10::DataPtr allocate(size_t n) const {
    c10::DataPtr inner = c10::GetDefaultCPUAllocator()->allocate(n);
    void* data = inner.get();
    const auto device = inner.device();
    auto* ctx = new Block{std::move(inner), n, this};
    const std::int64_t now = live_ += static_cast<std::int64_t>(n);
    for (std::int64_t p = peak_.load(); now > p && !peak_.compare_exchange_weak(p, now);) {
    }
    return {data, ctx, &release, device};
  }
  void reset_peak() { peak_ = live_.load(); }
  std::int64_t live() const { return live_; }
  std::int64_t peak() const { return peak_; }

 private:
  struct Block {
    c10::DataPtr inner;
    size_t n;
    const CountingAllocator* owner;
  };
  static void release(void* p) {
    auto* b = static_cast<Block*>(p);
    b->owner->live_ -= static_cast<std::int64_t>(b->n);
    delete b;
  }
  mutable std::atomic<std::int64_t> live_{0}, peak_{0};
};

}  // namespace

// The released stage 3 (decoder learning, encoder statistics updating, soft
// teacher) at batch 1 and 2 (float64): per-group backward gives the same
// losses, gradients and BatchNorm statistics as one backward over the batch.
TEST(Stage3Strategies, ReleasedStage3MatchesOneBackward) {
  const std::vector<std::string> released = {"modules.net.freeze_decoder=false", "modules.net.encoder_bn_update=true",
                                             "step.prediction_consistency.target=sigmoid_detached", "modules.net.widths=[4, 8, 8, 8]"};
  expect_same_step(released, 1);
  expect_same_step(released, 2, Strategy::per_group_backward, /*exact=*/true);
}

// The phantom profile (frozen decoder: nothing to do once per batch but the
// forward) also matches, with one backward per pair only.
TEST(Stage3Strategies, PhantomStage3MatchesOneBackward) { expect_same_step({"modules.net.widths=[4, 8, 8, 8]"}, 2); }

// All 14 incomplete subsets in one pass with BatchNorm statistics per pair
// give the released per-pair results (float64): losses, gradients, and the
// running statistics of the adapter and decoder after seven updates.
TEST(Stage3Strategies, BatchedPairsMatchOnePassPerPair) {
  const std::vector<std::string> released = {"modules.net.freeze_decoder=false", "modules.net.encoder_bn_update=true",
                                             "step.prediction_consistency.target=sigmoid_detached", "modules.net.widths=[4, 8, 8, 8]"};
  expect_same_step(released, 1, Strategy::batched_bn, /*exact=*/true);
  expect_same_step(released, 2, Strategy::batched_bn, /*exact=*/true);
  expect_same_step({"modules.net.widths=[4, 8, 8, 8]"}, 2, Strategy::batched_bn, /*exact=*/true);
}

// Groups of unequal size (14 subsets in fours: 4, 4, 4, 2) cannot share one
// pass: the error names the option to change.
TEST(Stage3Strategies, BatchedPairsNeedEqualGroups) {
  const Registry r = test::builtin_registry();
  const Graph g = stage3(r, {"modules.net.widths=[4, 8, 8, 8]", "train.accumulate=null", "modules.net.group_bn=batched",
                             "step.subsets.group_size=4"});
  Instance inst(g, torch::kCPU);
  inst.set_training(true);
  try {
    inst.run_step(make_batch(1, 16), 0, 0, true);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("group_bn: batched needs groups of equal size"), std::string::npos) << e.what();
  }
}

// Per-group backward holds one pair's activations instead of all seven: the
// allocator's peak during a step falls to well under half of one backward's,
// and of the batched strategy's, which holds all seven in larger tensors.
TEST(Stage3Strategies, PeakMemoryIsOneGroups) {
  static CountingAllocator counting;
  c10::SetCPUAllocator(&counting, /*priority=*/100);
  const bool mkldnn = at::globalContext().userEnabledMkldnn();
  at::globalContext().setUserEnabledMkldnn(false);  // its scratch space bypasses the allocator
  const Registry r = test::builtin_registry();
  const std::vector<std::string> variant = {"modules.net.freeze_decoder=false", "modules.net.encoder_bn_update=true"};
  std::vector<std::string> with = variant;
  with.push_back(kAccumulate);
  std::vector<std::string> plain = variant;
  plain.push_back("train.accumulate=null");
  const Graph one = stage3(r, plain), grouped = stage3(r, with);
  const Packet batch = make_batch(1, 24);
  std::int64_t peak_one = 0, peak_grouped = 0;
  {
    Instance inst(one, torch::kCPU);
    inst.set_training(true);
    counting.reset_peak();
    const std::int64_t base = counting.live();
    auto outs = inst.run_step(batch, 0, 0, true);
    outs.at("total").at("loss").backward();
    peak_one = counting.peak() - base;
  }
  {
    Instance inst(grouped, torch::kCPU);
    inst.set_training(true);
    counting.reset_peak();
    const std::int64_t base = counting.live();
    inst.run_step_grouped(batch, 0, 0, [](const torch::Tensor& loss, const std::string&) { loss.backward(); });
    peak_grouped = counting.peak() - base;
  }
  std::int64_t peak_batched = 0;
  {
    std::vector<std::string> batched = variant;
    batched.insert(batched.end(), {"train.accumulate=null", "modules.net.group_bn=batched"});
    const Graph g = stage3(r, batched);
    Instance inst(g, torch::kCPU);
    inst.set_training(true);
    counting.reset_peak();
    const std::int64_t base = counting.live();
    auto outs = inst.run_step(batch, 0, 0, true);
    outs.at("total").at("loss").backward();
    peak_batched = counting.peak() - base;
  }
  at::globalContext().setUserEnabledMkldnn(mkldnn);
  c10::SetCPUAllocator(c10::GetDefaultCPUAllocator(), /*priority=*/101);
  std::cout << "step peak: one backward " << peak_one / 1048576.0 << " MiB, per-group backward " << peak_grouped / 1048576.0
            << " MiB, batched pairs " << peak_batched / 1048576.0 << " MiB\n";
  EXPECT_GT(peak_one, 0);
  EXPECT_LT(peak_grouped * 2, peak_one);
  EXPECT_LT(peak_grouped * 2, peak_batched);  // batching buys kernels, not memory
}

// A gradient that would reach a once-per-batch output through a group (a
// consistency loss that does not detach its reference) is an error naming
// that output, not a silently smaller gradient.
TEST(Stage3Strategies, GradientIntoSharedOutputIsAnError) {
  const Registry r = test::builtin_registry();
  const Graph g = stage3(r, {"modules.net.freeze_decoder=false", "modules.net.widths=[4, 8, 8, 8]",
                             "step.prediction_consistency.target=label", kAccumulate});
  Instance inst(g, torch::kCPU);
  inst.set_training(true);
  try {
    inst.run_step_grouped(make_batch(1, 16), 0, 0, [](const torch::Tensor& loss, const std::string&) { loss.backward(); });
    FAIL() << "no error";
  } catch (const std::exception& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'full.logits'"), std::string::npos) << m;
    EXPECT_NE(m.find("detach"), std::string::npos) << m;
  }
}

// Graphs that per-group backward cannot split exactly are refused where they
// are written: a contrastive loss over split rows, a call on split rows
// without the group labels, a partial sum of split and unsplit terms, an
// objective that does not depend on the split, and a reference that is no output.
TEST(Stage3Strategies, UnsplittableGraphsAreRefused) {
  const Registry r = test::builtin_registry();
  test::TempDir dir;
  const auto error = [&](const std::string& step, const std::vector<std::string>& extra, const std::string& train = "") {
    const std::string file = dir.write("g.yaml", "include: " + kStage3 + "\nstep:\n" + step + train);
    std::vector<std::string> o = stage3_overrides(extra);
    if (train.empty()) o.push_back(kAccumulate);
    try {
      build_graph(load_graph_doc(file, o), file, r);
    } catch (const GraphError& e) {
      return e.diagnostics().str();
    }
    return std::string("no error");
  };
  EXPECT_NE(error("  - {id: contrast, type: loss.nt_xent, in: [missing, full]}\n", {}).find("'contrast' (loss.nt_xent) couples"),
            std::string::npos);
  EXPECT_NE(error("  - {id: again, type: call, module: net, in: {incomplete: subsets.incomplete}}\n", {})
                .find("node 'again' runs module 'net' on split rows but is not given"),
            std::string::npos);
  EXPECT_NE(error("  - {id: part, type: loss.sum, in: [dice_full, prediction_consistency]}\n", {}).find("'part' adds split and unsplit"),
            std::string::npos);
  EXPECT_NE(error("  - {id: dice_full}\n", {"train.objective=dice_full"}).find("does not depend on subsets.group"), std::string::npos);
  const std::string bad = error("  - {id: dice_full}\n", {}, "train:\n  accumulate: {groups: subsets.groups}\n");
  EXPECT_NE(bad.find("g.yaml"), std::string::npos) << bad;
  EXPECT_NE(bad.find("'subsets.groups' is not a NODE.KEY output"), std::string::npos) << bad;
}

}  // namespace umrflow
