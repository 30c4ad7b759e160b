// umrflow/run.h: running a validated graph into a run directory.
//
// run_graph() instantiates the graph's nodes, then for each epoch runs the data
// plane (scheduler.h) and, per batch, the step plane: every step node in
// topological order, then, when training, backward from the objective's `loss`
// and one optimizer step over the unfrozen modules.
//
// Run directory (`runs/<name>/` unless told otherwise; an existing non-empty
// directory is never overwritten: `<name>.1`, `<name>.2`, ... are used):
//   graph.yaml      the resolved graph (includes merged, overrides applied)
//   log.txt         everything the run printed
//   metrics.jsonl   one JSON object per epoch: epoch, time_s, samples_per_s,
//                   busy_fraction (share of the step plane's time at work) and
//                   data_wait_s (its time waiting for batches), and the epoch
//                   mean of every scalar a step node output
//   node_times.tsv  per epoch, each data node's calls and mean time per sample,
//                   and the step plane's per batch; a run whose step waits for
//                   data (busy below 0.8) warns once, naming the slowest node
//   skipped.tsv     samples a node dropped under a skip policy (epoch, sample, node, reason)
//   last.pt         the checkpoint of the last completed epoch (weights,
//                   optimizer state, epoch), written after every epoch;
//                   epoch_NNNN.pt every `checkpoint.every` epochs. Written to a
//                   temporary file and renamed, so a crash never leaves a
//                   half-written checkpoint in their place.
//   interrupted.pt  the weights in the middle of the epoch a stop cut short;
//                   removed when a resumed run completes that epoch
//   checksums.sha256  the SHA-256 of every checkpoint above, as `sha256sum`
//                   writes it; --resume and init.from refuse a checkpoint
//                   that no longer matches it (digest.h)
//   curves.svg      every metric per epoch, drawn when the run ends or stops (curves.h)
//
// SIGINT (Ctrl-C), SIGTERM, SIGHUP and SIGUSR1 are honoured after the current
// step: interrupted.pt is written, last.pt keeps the last whole epoch, and the
// summary says `interrupted`; the CLI then exits with 128 + the signal. A stop
// during validation discards that validation (no score, no best.pt). `umrflow run --resume RUN_DIR`
// continues from last.pt into the same directory.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "umrflow/graph.h"
#include "umrflow/op_profile.h"

namespace umrflow {

class Registry;

struct RunOptions {
  std::string run_dir;       // empty: runs/<graph name>
  int threads = -1;          // -1: the graph's execution.threads
  bool quiet = false;        // no progress output on the terminal
  /// Only progress reaches the terminal (log.txt keeps every line): for a verb
  /// that runs a graph it built in a scratch directory and reports itself.
  bool progress_only = false;
  /// Set to true (from a signal handler, another thread) to stop after the
  /// current step. Null: the process-wide SIGINT flag.
  std::atomic<bool>* stop = nullptr;
  /// A run directory to continue from its last.pt (weights, optimizer state,
  /// epoch; every random draw derives from seed, epoch and index, so the rest
  /// of the run is the one an uninterrupted run would have had).
  std::string resume;
  /// Epochs of a graph that does not train (for benchmarks of data graphs:
  /// later epochs find the loaders' memory caches warm). Ignored when training.
  std::int64_t passes = 1;
  /// Step nodes' value checks (umrflow/step_checks.h) kept and read at logged
  /// steps even on the CPU, as on an accelerator (tests of that path).
  bool defer_checks = false;
  /// Op-level profile of the last epoch (umrflow/op_profile.h), returned in
  /// RunSummary::profile.
  bool profile_last_epoch = false;
};

/// The learning rate of `epoch` (0-based) under the graph's schedule.
double scheduled_lr(const TrainSettings& train, std::int64_t epoch);

struct RunSummary {
  std::string run_dir;
  std::int64_t epochs_done = 0;
  bool interrupted = false;
  std::map<std::string, double> final_metrics;  // the last line of metrics.jsonl
  std::vector<OpProfile::Row> profile;  // with RunOptions::profile_last_epoch
  std::int64_t profile_steps = 0;       // the steps (batches) that profile covers
};

/// Runs `graph`, whose node types are in `registry`. Throws NodeError for a
/// failing node, std::runtime_error for I/O problems; a checkpoint already
/// written is never removed.
RunSummary run_graph(const Graph& graph, const Registry& registry, const RunOptions& options);

/// Installs handlers for SIGINT, SIGTERM (what Slurm and Kubernetes send before
/// a kill), SIGHUP and SIGUSR1 (Slurm's `--signal` warning before the time
/// limit) that set the process-wide stop flag: the run finishes its step,
/// writes interrupted.pt and returns. A later signal only prints that the stop
/// is under way (the checkpoint is never cut short); SIGKILL still aborts.
/// Returns that flag.
std::atomic<bool>& install_interrupt_handler();

/// The signal that set the stop flag (0: none).
int stop_signal();

/// The exit status of a run that a signal stopped: 128 + the signal (130
/// SIGINT, 143 SIGTERM, 129 SIGHUP, 138 SIGUSR1); 130 when the flag was set
/// without one.
int interrupted_exit_code();

/// Reads metrics.jsonl's last record as name -> value (numbers only).
std::map<std::string, double> read_last_metrics(const std::string& metrics_jsonl);

}  // namespace umrflow
