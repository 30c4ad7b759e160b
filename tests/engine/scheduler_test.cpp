#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include <tbb/info.h>

#include "umrflow/scheduler.h"

namespace umrflow {

namespace {

/// Counts samples between their load and the end of the step that consumes them.
struct Census {
  std::atomic<int> alive{0}, max_alive{0}, in_transform{0}, max_in_transform{0};
  static void raise_max(std::atomic<int>& max, int v) {
    int m = max.load();
    while (v > m && !max.compare_exchange_weak(m, v)) {
    }
  }
};

class RandomSource final : public SourceNode {
 public:
  RandomSource(std::int64_t n, Census* census) : n_(n), census_(census) {}
  std::int64_t size() const override { return n_; }
  Packet load(std::int64_t index, Context& ctx) override {
    if (census_) Census::raise_max(census_->max_alive, ++census_->alive);
    Packet p;
    p.tensors["x"] = torch::rand({3}, ctx.generator());
    p.tensors["index"] = torch::tensor(index);
    p.samples.push_back({index, "s" + std::to_string(index), {}});
    return p;
  }

 private:
  std::int64_t n_;
  Census* census_;
};

/// Adds noise from its own stream and sleeps a random while (from a shared,
/// unseeded generator) so that samples finish out of order.
class JitteryNoise final : public SampleNode {
 public:
  JitteryNoise(Census* census, std::int64_t fail_at = -1) : census_(census), fail_at_(fail_at) {}
  void apply(Packet& s, Context& ctx) override {
    if (census_) Census::raise_max(census_->max_in_transform, ++census_->in_transform);
    int micros;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      micros = std::uniform_int_distribution<int>(0, 3000)(jitter_);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(micros));
    if (census_) --census_->in_transform;
    if (ctx.index() == fail_at_) throw std::runtime_error("corrupt voxel data");
    s.at("x") = s.at("x") + torch::randn({3}, ctx.generator());
  }

 private:
  Census* census_;
  std::int64_t fail_at_;
  std::mutex mutex_;
  std::mt19937 jitter_{std::random_device{}()};
};

struct Plane {
  RandomSource source;
  JitteryNoise noise;
  DataPlane plane;
  Plane(std::int64_t n, std::int64_t batch, std::int64_t prefetch, Census* census = nullptr, std::int64_t fail_at = -1)
      : source(n, census), noise(census, fail_at) {
    plane.source = &source;
    plane.source_id = "src";
    plane.source_type = "test.source";
    plane.transforms = {{&noise, "noise", "test.noise"}};
    plane.batch_size = batch;
    plane.prefetch = prefetch;
    plane.seed = 11;
  }
};

std::vector<torch::Tensor> collect(const DataPlane& plane, int threads) {
  std::vector<torch::Tensor> out;
  run_epoch(plane, 0, threads, [&](Packet& b, std::int64_t) { return out.push_back(b.at("x").clone()), true; });
  return out;
}

}  // namespace

// Samples reach the step in epoch order however the transforms interleave,
// and no more than `prefetch` samples are ever alive at once.
TEST(Scheduler, OrderRestoredAndPrefetchBounded) {
  Census census;
  Plane p(64, 4, 8, &census);
  std::vector<std::int64_t> order;
  run_epoch(p.plane, 0, 2, [&](Packet& b, std::int64_t) {
    const auto idx = b.at("index");
    for (std::int64_t i = 0; i < idx.numel(); ++i) order.push_back(idx[i].item<std::int64_t>());
    for (const auto& s : b.samples) EXPECT_EQ("s" + std::to_string(s.index), s.id);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a slow step: the plane must wait, not pile up
    census.alive -= static_cast<int>(idx.numel());
    return true;
  });
  ASSERT_EQ(order.size(), 64u);
  for (std::size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], static_cast<std::int64_t>(i));
  EXPECT_LE(census.max_alive.load(), 8);
  EXPECT_GE(census.max_alive.load(), 4);  // at least a batch was in flight
  EXPECT_GE(census.max_in_transform.load(), 2) << "transforms never ran in parallel";
}

// The same seed gives the same batches with one worker thread and with two.
TEST(Scheduler, SameSeedSameOutputsAtAnyThreadCount) {
  Plane a(40, 4, 8), b(40, 4, 8);
  auto one = collect(a.plane, 1);
  auto two = collect(b.plane, 2);
  ASSERT_EQ(one.size(), two.size());
  for (std::size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], two[i])) << "batch " << i;
  Plane c(40, 4, 8);
  c.plane.seed = 12;
  auto other = collect(c.plane, 2);
  EXPECT_FALSE(torch::equal(one[0], other[0]));
}

// Different epochs draw different samples from the same seed.
TEST(Scheduler, EpochChangesTheDraws) {
  Plane p(4, 4, 4);
  torch::Tensor e0, e1;
  run_epoch(p.plane, 0, 1, [&](Packet& b, std::int64_t) { return e0 = b.at("x").clone(), true; });
  run_epoch(p.plane, 1, 1, [&](Packet& b, std::int64_t) { return e1 = b.at("x").clone(), true; });
  EXPECT_FALSE(torch::equal(e0, e1));
}

// An exception in a node cancels the epoch and names the node and the sample.
TEST(Scheduler, NodeFailureNamesNodeAndSample) {
  Plane p(32, 4, 8, nullptr, 13);
  try {
    run_epoch(p.plane, 0, 2, [](Packet&, std::int64_t) { return true; });
    FAIL() << "expected NodeError";
  } catch (const NodeError& e) {
    EXPECT_EQ(e.node_id(), "noise");
    EXPECT_NE(e.sample().find("s13"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("corrupt voxel data"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("test.noise"), std::string::npos);
  }
}

// An exception in the step is reported with the batch's samples.
TEST(Scheduler, StepFailureNamesSamples) {
  Plane p(8, 4, 4);
  try {
    run_epoch(p.plane, 0, 2, [](Packet&, std::int64_t i) -> bool {
      if (i == 1) throw std::runtime_error("loss exploded");
      return true;
    });
    FAIL();
  } catch (const NodeError& e) {
    EXPECT_EQ(e.sample(), "s4,s5,s6,s7");
    EXPECT_EQ(e.reason(), "loss exploded");
  }
}

// A step that asks to stop ends the epoch after that step.
TEST(Scheduler, StopAfterCurrentStep) {
  Plane p(40, 4, 8);
  std::int64_t seen = 0;
  EpochResult r = run_epoch(p.plane, 0, 2, [&](Packet&, std::int64_t i) { return ++seen, i < 2; });
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(r.batches, 3);
}

/// Drops every third sample as a node under a skip policy would.
class SkipEveryThird final : public SampleNode {
 public:
  void apply(Packet& s, Context& ctx) override {
    if (ctx.index() % 3 == 0) throw SkipSample("unreadable");
    (void)s;
  }
};

// Skipped samples leave their batch, are listed, and do not leak in-flight
// places: an epoch with more skips than the prefetch depth still finishes.
TEST(Scheduler, SkippedSamplesAreListedAndReleased) {
  Plane p(30, 4, 4);
  SkipEveryThird skipper;
  p.plane.transforms.push_back({&skipper, "skipper", "test.skip"});
  std::vector<std::int64_t> seen;
  EpochResult r = run_epoch(p.plane, 0, 2, [&](Packet& b, std::int64_t) {
    for (std::int64_t i = 0; i < b.at("index").numel(); ++i) seen.push_back(b.at("index")[i].item<std::int64_t>());
    return true;
  });
  EXPECT_EQ(r.samples, 20);
  ASSERT_EQ(r.skipped.size(), 10u);
  for (const auto& s : r.skipped) {
    EXPECT_EQ(s.node, "skipper");
    EXPECT_EQ(s.reason, "unreadable");
  }
  ASSERT_EQ(seen.size(), 20u);
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_NE(seen[i] % 3, 0);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
}

// The last, smaller batch is delivered unless drop_last is set.
TEST(Scheduler, LastPartialBatch) {
  Plane p(10, 4, 8);
  std::vector<std::int64_t> sizes;
  auto r = run_epoch(p.plane, 0, 2, [&](Packet& b, std::int64_t) { return sizes.push_back(b.at("x").size(0)), true; });
  EXPECT_EQ(sizes, (std::vector<std::int64_t>{4, 4, 2}));
  EXPECT_EQ(r.samples, 10);
  p.plane.drop_last = true;
  sizes.clear();
  run_epoch(p.plane, 0, 2, [&](Packet& b, std::int64_t) { return sizes.push_back(b.at("x").size(0)), true; });
  EXPECT_EQ(sizes, (std::vector<std::int64_t>{4, 4}));
  EXPECT_EQ(batches_per_epoch(10, 4, false), 3);
  EXPECT_EQ(batches_per_epoch(10, 4, true), 2);
}

// The stage hook sees every batch once, in order, including the last partial
// one; the step gets the staged batch; and batch i + 1 is staged while the
// step still works on batch i (each step waits until it has been).
TEST(Scheduler, NextBatchIsStagedWhileTheStepWorks) {
  if (tbb::info::default_concurrency() < 2) GTEST_SKIP() << "staging beside a waiting step needs a second core";
  Plane p(23, 2, 8);  // 11 full batches and one of a single sample
  std::mutex mutex;
  std::condition_variable staged_one;
  std::vector<std::int64_t> staged;
  p.plane.stage = [&](Packet& b, std::int64_t i) {
    b.tensors["staged_as"] = torch::tensor(i);
    std::lock_guard<std::mutex> lock(mutex);
    staged.push_back(i);
    staged_one.notify_all();
  };
  std::vector<std::int64_t> not_ahead;  // steps during which the next batch was not staged
  EpochResult r = run_epoch(p.plane, 0, 2, [&](Packet& b, std::int64_t i) {
    EXPECT_EQ(b.at("staged_as").item<std::int64_t>(), i);
    if (i + 1 < 11) {  // the partial batch is made after the graph ends
      std::unique_lock<std::mutex> lock(mutex);
      if (!staged_one.wait_for(lock, std::chrono::seconds(30), [&] { return static_cast<std::int64_t>(staged.size()) > i + 1; }))
        not_ahead.push_back(i);
    }
    return true;
  });
  EXPECT_EQ(r.batches, 12);
  EXPECT_TRUE(not_ahead.empty()) << not_ahead.size() << " steps waited in vain for the next batch";
  std::vector<std::int64_t> expected(12);
  for (std::int64_t i = 0; i < 12; ++i) expected[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(staged, expected);
}

// However slow the step and however deep the prefetch, no batch is staged
// before the step of the batch two places earlier has finished.
TEST(Scheduler, AtMostOneBatchStagedAhead) {
  Plane p(40, 2, 16);  // the prefetch alone would allow 8 batches ahead
  std::atomic<std::int64_t> finished{-1}, most_ahead{0};
  p.plane.stage = [&](Packet&, std::int64_t i) {
    const std::int64_t ahead = i - finished.load();
    std::int64_t m = most_ahead.load();
    while (ahead > m && !most_ahead.compare_exchange_weak(m, ahead)) {
    }
  };
  run_epoch(p.plane, 0, 2, [&](Packet&, std::int64_t i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    finished = i;
    return true;
  });
  EXPECT_LE(most_ahead.load(), 2) << "a batch was staged while two earlier ones still waited for the step";
  EXPECT_GE(most_ahead.load(), 1);
}

// A stage that throws fails the epoch as the batch node, with the batch's samples.
TEST(Scheduler, StageFailureNamesTheBatch) {
  Plane p(8, 2, 4);
  p.plane.batch_id = "batcher";
  p.plane.stage = [](Packet&, std::int64_t i) {
    if (i == 1) throw std::runtime_error("device out of memory");
  };
  try {
    run_epoch(p.plane, 0, 2, [](Packet&, std::int64_t) { return true; });
    FAIL() << "expected NodeError";
  } catch (const NodeError& e) {
    EXPECT_EQ(e.node_id(), "batcher");
    EXPECT_EQ(e.sample(), "s2,s3");
    EXPECT_NE(e.reason().find("device out of memory"), std::string::npos);
  }
}

// Samples whose shapes differ cannot be batched; the error names both.
TEST(Scheduler, CollateMismatchIsReported) {
  Packet a, b;
  a.tensors["x"] = torch::zeros({2, 3});
  a.samples.push_back({0, "a", {}});
  b.tensors["x"] = torch::zeros({2, 4});
  b.samples.push_back({1, "b", {}});
  try {
    collate({a, b});
    FAIL();
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("key 'x'"), std::string::npos);
    EXPECT_NE(m.find("[2, 3]"), std::string::npos);
    EXPECT_NE(m.find("[2, 4]"), std::string::npos);
  }
  Packet batch = collate({a, a});
  EXPECT_EQ(batch.at("x").sizes(), (c10::IntArrayRef{2, 2, 3}));
  EXPECT_EQ(batch.samples.size(), 2u);
}

// A source of 2^63 - 1 samples costs nothing up front: indices are made as the
// prefetch limit admits them, and a stop after three batches ends the epoch.
TEST(Scheduler, HugeSourceIsNotQueuedUpFront) {
  Census census;
  Plane p(std::numeric_limits<std::int64_t>::max(), 2, 4, &census);
  std::int64_t seen = 0;
  EpochResult r = run_epoch(p.plane, 0, 2, [&](Packet& b, std::int64_t i) {
    census.alive -= static_cast<int>(b.samples.size());
    return ++seen, i < 2;
  });
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.batches, 3);
  EXPECT_LE(census.max_alive.load(), 4);
  EXPECT_EQ(batches_per_epoch(std::numeric_limits<std::int64_t>::max(), 2, false), std::numeric_limits<std::int64_t>::max() / 2 + 1);
  EXPECT_EQ(batches_per_epoch(7, 2, true), 3);
  EXPECT_EQ(batches_per_epoch(7, 2, false), 4);
}

// Every batch's handler time is recorded in order, each at least the time the
// handler slept; the median is the middle one (the upper middle for an even
// count), as a step-timing script's median.
TEST(Scheduler, BatchTimesAreRecordedAndTheirMedianIsTheMiddleOne) {
  Plane p(10, 2, 4);
  const std::vector<int> sleep_ms = {40, 1, 1, 12, 1};
  const EpochResult r = run_epoch(p.plane, 0, 2, [&](Packet&, std::int64_t index) {
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms.at(static_cast<std::size_t>(index))));
    return true;
  });
  ASSERT_EQ(r.batch_seconds.size(), sleep_ms.size());
  double sum = 0;
  for (std::size_t i = 0; i < sleep_ms.size(); ++i) {
    EXPECT_GE(r.batch_seconds[i], sleep_ms[i] / 1000.0) << "batch " << i;
    sum += r.batch_seconds[i];
  }
  EXPECT_DOUBLE_EQ(sum, r.step_seconds);
  std::vector<double> sorted = r.batch_seconds;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(r.median_batch_seconds(), sorted[2]);

  EpochResult even;
  EXPECT_EQ(even.median_batch_seconds(), 0.0);
  even.batch_seconds = {0.4, 0.1, 0.3, 0.2};
  EXPECT_EQ(even.median_batch_seconds(), 0.3);
}

}  // namespace umrflow
