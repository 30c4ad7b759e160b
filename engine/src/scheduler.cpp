#include "umrflow/scheduler.h"

#include <tbb/flow_graph.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>

#include "umrflow/diagnostics.h"

namespace umrflow {

namespace flow = tbb::flow;

std::int64_t batches_per_epoch(std::int64_t samples, std::int64_t batch_size, bool drop_last) {
  return samples / batch_size + (!drop_last && samples % batch_size != 0 ? 1 : 0);  // no overflow near INT64_MAX
}

namespace {

struct Msg {
  std::int64_t seq = 0;
  std::shared_ptr<Packet> packet;
};

/// A collated batch and the number of samples in it.
struct Made {
  Packet batch;
  std::int64_t samples = 0;
};

using Clock = std::chrono::steady_clock;

/// Time spent in one data node's calls, added from any thread.
struct NodeClock {
  std::atomic<std::int64_t> nanoseconds{0}, calls{0};
  void add(Clock::time_point since) {
    nanoseconds += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count();
    calls += 1;
  }
};

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

/// The first failure wins; later ones are consequences of the cancellation.
class FirstError {
 public:
  void record(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = e;
    failed_ = true;
  }
  bool failed() const { return failed_.load(); }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
};

std::string sample_label(const Packet* p, std::int64_t index) {
  if (p && !p->samples.empty() && !p->samples[0].id.empty()) return "'" + p->samples[0].id + "' (#" + std::to_string(index) + ")";
  return "#" + std::to_string(index);
}

}  // namespace

double EpochResult::median_batch_seconds() const {
  if (batch_seconds.empty()) return 0;
  std::vector<double> sorted = batch_seconds;
  const auto middle = sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2);
  std::nth_element(sorted.begin(), middle, sorted.end());
  return *middle;
}

EpochResult run_epoch(const DataPlane& plane, std::int64_t epoch, int threads, const BatchHandler& on_batch) {
  EpochResult result;
  const std::int64_t n = plane.indices.empty() ? plane.source->size() : static_cast<std::int64_t>(plane.indices.size());
  FirstError error;
  std::vector<Packet> pending;  // the batch being filled; touched by the serial batcher only
  std::mutex skip_mutex;
  auto skip = [&](const std::string& sample, const std::string& node, const std::string& reason) {
    std::lock_guard<std::mutex> lock(skip_mutex);
    result.skipped.push_back({sample, node, reason});
  };
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
  std::unique_ptr<NodeClock[]> clocks(new NodeClock[plane.transforms.size() + 1]);  // [0]: the source
  Clock::time_point step_free = Clock::now();  // when the step plane last became idle

  // The feed: one collated (and staged) batch, in batch order.
  std::int64_t made_batches = 0;
  auto make = [&](const std::vector<Packet>& samples) {
    auto made = std::make_shared<Made>();
    made->samples = static_cast<std::int64_t>(samples.size());
    try {
      made->batch = collate(samples);
    } catch (const std::exception& e) {
      throw NodeError(plane.batch_id, "batch", samples.empty() ? "?" : samples.front().sample_names(), e.what());
    }
    if (plane.stage) {
      try {
        plane.stage(made->batch, made_batches);
      } catch (const std::exception& e) {
        throw NodeError(plane.batch_id, "batch", made->batch.sample_names(), std::string("staging the batch ahead of the step: ") + e.what());
      }
    }
    ++made_batches;
    return made;
  };
  auto deliver = [&](Made& made) -> bool {
    const std::int64_t index = result.batches;
    bool go_on = true;
    const Clock::time_point start = Clock::now();
    result.wait_seconds += seconds_between(step_free, start);
    try {
      go_on = on_batch(made.batch, index);
    } catch (const NodeError&) {
      throw;
    } catch (const std::exception& e) {
      throw NodeError("(step plane)", "batch handler", made.batch.sample_names(), e.what());
    }
    step_free = Clock::now();
    result.batch_seconds.push_back(seconds_between(start, step_free));
    result.step_seconds += result.batch_seconds.back();
    result.samples += made.samples;
    result.batches += 1;
    return go_on;
  };

  arena.execute([&] {
    flow::graph g;
    // Sample indices are made one at a time as the limiter admits them, so a
    // source of any size costs no memory up front.
    std::int64_t next_ticket = 0;
    flow::input_node<std::int64_t> tickets(g, [&](tbb::flow_control& control) -> std::int64_t {
      if (next_ticket >= n || error.failed()) {
        control.stop();
        return 0;
      }
      return next_ticket++;
    });
    flow::limiter_node<std::int64_t> limiter(g, static_cast<std::size_t>(plane.prefetch));
    flow::function_node<std::int64_t, Msg> load(g, flow::unlimited, [&](std::int64_t position) -> Msg {
      // Tickets are positions in the epoch's list; the sequencer restores their order.
      const std::int64_t index = plane.indices.empty() ? position : plane.indices[static_cast<std::size_t>(position)];
      Msg m{position, nullptr};
      if (error.failed()) return m;
      const Clock::time_point start = Clock::now();
      try {
        Context ctx(plane.seed, epoch, index, plane.source_id, plane.training);
        m.packet = std::make_shared<Packet>(plane.source->load(index, ctx));
        clocks[0].add(start);
        if (m.packet->samples.empty()) m.packet->samples.push_back(SampleMeta{});
        m.packet->samples[0].index = index;
      } catch (const SkipSample& e) {
        skip(sample_label(nullptr, index), plane.source_id, e.what());
      } catch (const std::exception& e) {
        error.record(std::make_exception_ptr(NodeError(plane.source_id, plane.source_type, sample_label(nullptr, index), e.what())));
        g.cancel();
      }
      return m;
    });
    std::vector<std::unique_ptr<flow::function_node<Msg, Msg>>> stages;
    for (std::size_t k = 0; k < plane.transforms.size(); ++k) {
      const DataPlane::Stage& stage = plane.transforms[k];
      NodeClock* clock = &clocks[k + 1];
      stages.push_back(std::make_unique<flow::function_node<Msg, Msg>>(g, flow::unlimited, [&, stage, clock](Msg m) -> Msg {
        if (error.failed() || !m.packet) return m;
        const Clock::time_point start = Clock::now();
        const std::int64_t index = m.packet->samples.at(0).index;  // the sample's own, not its position
        try {
          Context ctx(plane.seed, epoch, index, stage.id, plane.training);
          stage.node->apply(*m.packet, ctx);
          clock->add(start);
        } catch (const SkipSample& e) {
          skip(sample_label(m.packet.get(), index), stage.id, e.what());
          m.packet.reset();
        } catch (const std::exception& e) {
          error.record(std::make_exception_ptr(NodeError(stage.id, stage.type, sample_label(m.packet.get(), index), e.what())));
          g.cancel();
        }
        return m;
      }));
    }
    flow::sequencer_node<Msg> order(g, [](const Msg& m) { return static_cast<std::size_t>(m.seq); });
    using Samples = std::shared_ptr<std::vector<Packet>>;
    // At most one batch made ahead of the one in the step.
    flow::queue_node<Samples> filled(g);
    flow::limiter_node<Samples> ahead(g, 2);
    flow::function_node<Samples, std::shared_ptr<Made>> feed(g, flow::serial, [&](Samples samples) -> std::shared_ptr<Made> {
      if (error.failed()) return nullptr;
      try {
        return make(*samples);
      } catch (...) {
        error.record(std::current_exception());
        g.cancel();
        return nullptr;
      }
    });
    flow::function_node<std::shared_ptr<Made>, flow::continue_msg> step(g, flow::serial, [&](std::shared_ptr<Made> made) {
      if (error.failed() || !made) return flow::continue_msg();
      bool go_on = true;
      try {
        go_on = deliver(*made);
      } catch (...) {
        error.record(std::current_exception());
        g.cancel();
        return flow::continue_msg();
      }
      if (!go_on) {
        result.stopped = true;
        g.cancel();
        return flow::continue_msg();
      }
      for (std::int64_t i = 0; i < made->samples; ++i) limiter.decrementer().try_put(flow::continue_msg());
      ahead.decrementer().try_put(flow::continue_msg());
      return flow::continue_msg();
    });
    flow::function_node<Msg, flow::continue_msg> batcher(g, flow::serial, [&](Msg m) {
      if (error.failed()) return flow::continue_msg();
      if (!m.packet) {  // skipped: give its place in flight back
        limiter.decrementer().try_put(flow::continue_msg());
        return flow::continue_msg();
      }
      pending.push_back(std::move(*m.packet));
      if (static_cast<std::int64_t>(pending.size()) == plane.batch_size) {
        filled.try_put(std::make_shared<std::vector<Packet>>(std::move(pending)));
        pending.clear();
      }
      return flow::continue_msg();
    });

    flow::make_edge(tickets, limiter);
    flow::make_edge(limiter, load);
    flow::sender<Msg>* last = &load;
    for (auto& s : stages) {
      flow::make_edge(*last, *s);
      last = s.get();
    }
    flow::make_edge(*last, order);
    flow::make_edge(order, batcher);
    flow::make_edge(filled, ahead);
    flow::make_edge(ahead, feed);
    flow::make_edge(feed, step);

    tickets.activate();
    g.wait_for_all();
  });

  error.rethrow();
  if (!result.stopped && !pending.empty() && !plane.drop_last) {
    arena.execute([&] {
      if (!deliver(*make(pending))) result.stopped = true;
    });
  }
  for (std::size_t k = 0; k <= plane.transforms.size(); ++k) {
    EpochResult::NodeTime t;
    t.id = k == 0 ? plane.source_id : plane.transforms[k - 1].id;
    t.type = k == 0 ? plane.source_type : plane.transforms[k - 1].type;
    t.calls = clocks[k].calls.load();
    t.seconds = static_cast<double>(clocks[k].nanoseconds.load()) * 1e-9;
    result.data_nodes.push_back(t);
  }
  return result;
}

}  // namespace umrflow
