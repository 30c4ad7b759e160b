#include "umrflow/run.h"

#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>

#include <ATen/record_function.h>
#include <tbb/info.h>

#include "collective.h"
#include "device_feed.h"
#include "device_memory.h"
#include "optimizer.h"
#include "instance.h"
#include "precision.h"
#include "progress.h"
#include "umrflow/curves.h"
#include "umrflow/digest.h"
#include "umrflow/distributed.h"
#include "umrflow/own_kernels.h"
#include "umrflow/rank_sync.h"
#include "umrflow/files.h"
#include "umrflow/random.h"

namespace umrflow {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) {
  if (!g_interrupted.exchange(true)) {
    g_stop_signal.store(sig);
    return;
  }
  // Later signals: the first one's stop (step, then interrupted.pt) goes on.
  static const char msg[] = "\numrflow: already stopping: finishing the step and writing the checkpoint (SIGKILL aborts)\n";
  [[maybe_unused]] const auto ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream s;
  s.precision(8);
  s << v;
  return s.str();
}

std::string fresh_run_dir(std::string wanted) {
  // "runs/base/" (a shell's completion) or "runs/base/." names runs/base
  // (only trailing separators and "." go: ".." is left to the filesystem,
  // which resolves it after any symbolic link).
  while (wanted.size() > 1 && (wanted.back() == '/' || (wanted.size() > 2 && wanted.compare(wanted.size() - 2, 2, "/.") == 0)))
    wanted.pop_back();
  auto usable = [](const fs::path& p) { return !fs::exists(p) || (fs::is_directory(p) && fs::is_empty(p)); };
  if (usable(wanted)) return wanted;
  for (int i = 1;; ++i) {
    std::string candidate = wanted + "." + std::to_string(i);
    if (usable(candidate)) return candidate;
  }
}

torch::Device pick_device(const std::string& wanted) {
  const bool cuda = torch::cuda::is_available();
  if (wanted == "cuda" && !cuda)
    throw std::runtime_error("the graph asks for `device: cuda`, but this build or machine has no CUDA device "
                             "(use `--set device=cpu` or `device: auto`)");
  return (wanted == "cuda" || (wanted == "auto" && cuda)) ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

class RunLog {
 public:
  RunLog(const std::string& path, bool echo) : file_(path, std::ios::app), echo_(echo) {
    if (!file_) throw std::runtime_error("cannot write '" + path + "'");
  }
  /// Writes a time-stamped line to log.txt and, unless `file_only` (or the
  /// log echoes only progress and this line is not), to stderr.
  void operator()(const std::string& line, bool file_only = false, bool is_progress = false) {
    file_only = file_only || (!echo_ && !is_progress);
    std::lock_guard<std::mutex> lock(mutex_);
    std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
    file_ << stamp << "  " << line << "\n";
    file_.flush();
    if (!file_only) std::fprintf(stderr, "%s\n", line.c_str());
  }

 private:
  std::mutex mutex_;
  std::ofstream file_;
  bool echo_ = true;
};

/// Epoch means of the scalars step nodes output ("node" for a loss, else
/// "node.key"), summed on the device in float64 so that adding a step never
/// waits for it; means() reads them once.
class ScalarMeans {
 public:
  void add(const std::map<std::string, Packet>& outs, bool skip_non_finite) {
    for (const auto& [id, packet] : outs)
      for (const auto& [key, t] : packet.tensors)
        if (t.dim() == 0 && t.is_floating_point()) {
          torch::Tensor v = t.detach().to(torch::kDouble);
          torch::Tensor n = torch::ones({}, v.options());
          if (skip_non_finite) {
            n = torch::isfinite(v).to(torch::kDouble);
            v = torch::where(n > 0, v, torch::zeros({}, v.options()));
          }
          auto& s = sums_[key == "loss" ? id : id + "." + key];
          s.first = s.first.defined() ? s.first + v : v;
          s.second = s.second.defined() ? s.second + n : n;
        }
  }
  /// Adds up the sums and counts of every rank, over the union of their keys
  /// (a rank may lack one: a scalar absent from all its batches).
  void reduce(Collective& group) {
    std::string names;
    for (const auto& [k, s] : sums_) names += k + "\n";
    for (const auto& list : group.gather(names)) {
      std::istringstream in(list);
      for (std::string k; std::getline(in, k);) sums_[k];
    }
    std::vector<torch::Tensor> all;
    for (auto& [k, s] : sums_) {  // in key order: the same on every rank
      s.first = s.first.defined() ? s.first.to(torch::kCPU).clone() : torch::zeros({}, torch::kDouble);
      s.second = s.second.defined() ? s.second.to(torch::kCPU).clone() : torch::zeros({}, torch::kDouble);
      all.push_back(s.first);
      all.push_back(s.second);
    }
    group.sum(all);
  }
  std::map<std::string, double> means() const {
    std::map<std::string, double> out;
    for (const auto& [k, s] : sums_) out[k] = s.first.item<double>() / std::max(1.0, s.second.item<double>());
    return out;
  }

 private:
  std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> sums_;
};

/// The checkpoints a run can resume from, best first: last.pt, then
/// epoch_NNNN.pt from the newest.
std::vector<fs::path> resume_candidates(const fs::path& dir) {
  std::vector<fs::path> out, epochs;
  if (fs::exists(dir / "last.pt")) out.push_back(dir / "last.pt");
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.size() == 13 && name.rfind("epoch_", 0) == 0 && e.path().extension() == ".pt") epochs.push_back(e.path());
    }
  std::sort(epochs.rbegin(), epochs.rend());
  out.insert(out.end(), epochs.begin(), epochs.end());
  return out;
}

/// Keeps the lines of metrics.jsonl that belong to epochs 1..`epoch` and were
/// not cut short, so a resumed run never repeats an epoch's line.
void trim_metrics(const std::string& path, std::int64_t epoch) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    if (!is_whole_metrics_line(line) || line.find("\"partial\"") != std::string::npos) continue;
    const auto at = line.find("\"epoch\": ");
    if (at == std::string::npos || std::strtoll(line.c_str() + at + 9, nullptr, 10) > epoch) continue;
    kept += line + "\n";
  }
  in.close();
  write_file_atomically(path, kept);
}

/// ": every sample was skipped (NAME at NODE: REASON; ...)", or a hint when none was.
std::string skipped_list(const EpochResult& r) {
  if (r.skipped.empty()) return " (is the data set empty, or the batch larger than the data with drop_last?)";
  std::string out = ": every sample was skipped (";
  for (std::size_t i = 0; i < r.skipped.size() && i < 10; ++i)
    out += (i ? "; " : "") + r.skipped[i].sample + " at " + r.skipped[i].node + ": " + r.skipped[i].reason;
  if (r.skipped.size() > 10) out += "; and " + std::to_string(r.skipped.size() - 10) + " more";
  return out + ")";
}

/// How long a collective waits for the other ranks before it gives up.
constexpr std::chrono::milliseconds kCollectiveTimeout{120000};

/// Below this busy fraction the run warns (once) that the data plane is the bottleneck.
constexpr double kBusyWarning = 0.8;

/// Appends each data node's time per sample, and the step plane's per batch,
/// to node_times.tsv in the run directory.
void record_node_times(const fs::path& dir, std::int64_t epoch, const EpochResult& r) {
  const bool fresh = !fs::exists(dir / "node_times.tsv");
  std::ofstream out(dir / "node_times.tsv", std::ios::app);
  if (fresh) out << "epoch\tnode\ttype\tcalls\tmean_ms\ttotal_s\n";
  auto row = [&](const std::string& id, const std::string& type, std::int64_t calls, double total) {
    out << epoch + 1 << "\t" << id << "\t" << type << "\t" << calls << "\t" << (calls ? 1000.0 * total / calls : 0.0) << "\t" << total << "\n";
  };
  for (const auto& n : r.data_nodes) row(n.id, n.type, n.calls, n.seconds);
  row("(step plane)", "per batch", r.batches, r.step_seconds);
}

/// What to say when the step waited for data: how long, and the data node
/// that costs most per sample.
std::string bottleneck_warning(const EpochResult& r, std::int64_t epoch) {
  const EpochResult::NodeTime* slowest = nullptr;
  for (const auto& n : r.data_nodes)
    if (n.calls > 0 && (!slowest || n.seconds / n.calls > slowest->seconds / slowest->calls)) slowest = &n;
  char text[512];
  std::snprintf(text, sizeof text,
                "warning: the data plane is the bottleneck: in epoch %lld the step waited %.2f s for data (busy %.0f%% of "
                "the time)",
                static_cast<long long>(epoch + 1), r.wait_seconds, 100.0 * r.busy_fraction());
  std::string out = text;
  if (slowest) {
    std::snprintf(text, sizeof text, "; the slowest data node is '%s' (%s), %.1f ms per sample", slowest->id.c_str(),
                  slowest->type.c_str(), 1000.0 * slowest->seconds / slowest->calls);
    out += text;
  }
  return out + "; raise execution.threads or lighten that node (per-node times: node_times.tsv)";
}

/// Whether a pass of `graph` may share its samples among the ranks: every
/// step node is per-batch or gathers its results in finish() (Sharding), and
/// batches hold one sample, so that the repeats a share is padded with fill
/// whole batches, which the pass leaves out of its scalars.
constexpr const char* kUnevenWithSyncBn =
    "the ranks hold different numbers of batches in this epoch (a sample was skipped on some rank, whose error message names "
    "it), and execution.sync_bn needs every rank in every step: fix or remove that case, or train without sync_bn";

/// A hint when libtorch's matrix products (sgemm) run on Debian's reference
/// BLAS, the unoptimised one that libblas3 installs under .../blas/ when no
/// other BLAS is present; empty otherwise.
std::string reference_blas_hint() {
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  if (!sgemm || !dladdr(sgemm, &info) || !info.dli_fname) return "";
  const std::string path = fs::weakly_canonical(info.dli_fname).string();
  if (path.find("/blas/libblas.so") == std::string::npos) return "";
  return "matrix products run on the reference BLAS (" + path +
         "), several times slower than OpenBLAS (stage 3 on the CPU about 1.8x): install it with "
         "`apt-get install libopenblas0-openmp` (tools/setup.sh does)";
}

bool shardable(const Graph& graph) {
  if (graph.data.empty() || graph.batch().params.get_int("size") != 1) return false;
  for (const auto& d : graph.step)
    if (d.spec && d.spec->kind == NodeKind::step && d.spec->sharding_given(d.params) == Sharding::whole) return false;
  return true;
}

/// How this rank takes part in a pass: its share of the samples when the
/// ranks share them, and from which batch on its share only repeats samples
/// of other ranks (DistributedSampler's padding; scalars leave those out).
struct Shares {
  Collective* group = nullptr;  // the ranks, when there are several: they stop together
  bool shared = false;          // false: this rank runs the whole pass
  std::int64_t padding_from = std::numeric_limits<std::int64_t>::max();
};

/// Gives `plane` this rank's share of `instance`'s samples when `share`.
Shares share_samples(const Instance& instance, DataPlane& plane, Collective* group, bool share) {
  Shares out;
  out.group = group;
  if (!group || !share) return out;
  out.shared = true;
  const std::int64_t n = instance.samples_per_epoch();
  plane.indices = shard_indices(n, group->rank(), group->size());
  const std::int64_t own = n > group->rank() ? (n - group->rank() - 1) / group->size() + 1 : 0;
  out.padding_from = (own + plane.batch_size - 1) / plane.batch_size;
  return out;
}

/// The ranks that have a batch in a step of a shared pass.
struct Presence {
  int count = 1;  // how many
  int root = 0;   // the lowest: the step starts from its buffers (rank 0 may have joined, its buffers stale)
};

Presence presence_of(const std::vector<bool>& which) {
  Presence p{0, -1};
  for (std::size_t r = 0; r < which.size(); ++r)
    if (which[r]) {
      ++p.count;
      if (p.root < 0) p.root = static_cast<int>(r);
    }
  return p;
}

/// The data plane's threads for `execution.threads: 0`: every core (0), but
/// on the CPU the step's intra-op threads already take the cores, and a data
/// plane as wide again oversubscribes them: the CPU step of
/// graphs/bench/step_unet3d_cpu.yaml took 0.105 s with two data-plane threads
/// beside two intra-op threads on two cores, 0.065 s with one
/// (docs/benchmarks.md). So the CPU gets the cores left over, plus the
/// thread that runs the step and shares it with the data plane.
int automatic_data_threads(const torch::Device& device) {
  if (!device.is_cpu()) return 0;
  const int cores = std::max(1, tbb::info::default_concurrency());  // the cores this process may use
  return std::max(1, cores - at::get_num_threads() + 1);
}

/// One epoch of `plane` in which the ranks of `shares` stay in step: every
/// step opens with a poll of the ranks that still have a batch (passed to
/// `step`), and a rank whose share ran out first (a skipped sample) calls
/// `join()` once for each step the others still take, so that collectives
/// pair up (PyTorch's Join), and `samples` counts all ranks' samples. Every
/// rank of the group stops after the same step; then `settle(root)` (when
/// given) runs on every rank with the lowest rank present in the last step,
/// whose state is the newest (DDP's join hook syncs from the last joiner).
/// Without sharing, `present` is one rank, this one, and no rank waits for
/// another's batches.
EpochResult run_joined_epoch(DataPlane& plane, std::int64_t epoch, int threads, const Shares& shares, std::atomic<bool>& stop,
                             const std::function<void(Packet&, std::int64_t, const Presence&)>& step,
                             const std::function<void(const Presence&)>& join, const std::function<void(int root)>& settle = nullptr) {
  Collective* group = shares.group;
  int last_root = 0;
  EpochResult r = run_epoch(plane, epoch, threads, [&](Packet& batch, std::int64_t index) {
    const Presence present = shares.shared ? presence_of(group->which(true)) : Presence{};
    last_root = present.root;
    step(batch, index, present);
    return !(group ? group->any(stop.load()) : stop.load());
  });
  if (!shares.shared) return r;
  while (!r.stopped) {
    const Presence present = presence_of(group->which(false));
    if (present.count == 0) break;
    last_root = present.root;
    join(present);
    r.stopped = group->any(stop.load());
  }
  if (settle) settle(last_root);
  torch::Tensor seen = torch::tensor({static_cast<double>(r.samples)}, torch::kFloat64);
  group->sum({seen});
  r.samples = static_cast<std::int64_t>(seen.item<double>());
  return r;
}

/// The step nodes' finish(); in a sharded pass with `gather` active, so that
/// nodes merge every rank's results.
std::map<std::string, double> finish_pass(const Instance& instance, const std::string& dir, Collective* group, bool sharded) {
  RankSync merge;
  if (sharded) {
    merge.rank = group->rank();
    merge.size = group->size();
    merge.gather = [group](const std::string& bytes) { return group->gather(bytes); };
  }
  const RankSyncScope scope(sharded ? &merge : nullptr);
  return instance.finish(dir);
}

/// Runs `epoch`; when it fails, a step node's kept check that failed earlier
/// (umrflow/step_checks.h: the cause, such as a bad label, of what failed
/// after it) is what gets reported.
template <typename Epoch>
EpochResult reporting_kept_checks(const Instance& instance, Epoch&& epoch) {
  try {
    return epoch();
  } catch (...) {
    try {
      instance.read_checks();
    } catch (const NodeError&) {
      throw;
    } catch (...) {  // the device itself failed: keep the first error
    }
    throw;
  }
}

/// The validation figures, or nothing when a stop cut the pass short (a
/// partial mean is never a score).
std::optional<std::map<std::string, double>> validate(const Graph& train_graph, const Registry& registry, const Instance& trained, torch::Device device,
                                       int threads, const std::string& out_dir, std::atomic<bool>& stop, Collective* group,
                                       bool defer_checks) {
  // load_graph built it up front; a graph from build_graph alone builds it now.
  const Graph graph = train_graph.validation ? *train_graph.validation
                                             : build_graph(load_graph_doc(train_graph.train.validate_graph, train_graph.train.validate_set),
                                                           train_graph.train.validate_graph, registry);
  Instance instance(graph, device, defer_checks);
  std::map<std::string, torch::Tensor> source;
  for (auto& [name, t] : trained.weights()) source[name] = t;
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : instance.weights()) {
      auto it = source.find(name);
      if (it == source.end() || it->second.sizes() != t.sizes())
        throw std::runtime_error("train.validate: the validation graph's tensor '" + name + "' " +
                                 (it == source.end() ? "is not in the training graph" : "has another shape there") +
                                 " (declare the same modules with the same parameters)");
      t.copy_(it->second);
    }
  }
  instance.set_training(false);
  DataPlane plane = instance.data_plane(false, graph.execution.prefetch);
  ScalarMeans means;
  const Shares shares = share_samples(instance, plane, group, shardable(graph));
  const EpochResult r = reporting_kept_checks(instance, [&] { return run_joined_epoch(plane, 0, threads, shares, stop, [&](Packet& batch, std::int64_t index, const Presence&) {
    for (auto& [k, t] : batch.tensors) t = t.to(device);
    torch::NoGradGuard no_grad;
    auto outs = instance.run_step(batch, 0, index, false);
    if (index < shares.padding_from) means.add(outs, /*skip_non_finite=*/true);
  }, [](const Presence&) {}); });
  instance.read_checks();
  if (r.stopped) return std::nullopt;
  if (r.samples == 0) throw std::runtime_error("train.validate: the validation graph " + train_graph.train.validate_graph +
                                               " saw no sample" + skipped_list(r));
  fs::create_directories(out_dir);
  if (shares.shared) means.reduce(*group);
  auto metrics = means.means();
  for (const auto& [k, v] : finish_pass(instance, out_dir, group, shares.shared)) metrics[k] = v;
  return metrics;
}

}  // namespace

std::atomic<bool>& install_interrupt_handler() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaction(sig, &action, nullptr);
  return g_interrupted;
}

int stop_signal() { return g_stop_signal.load(); }

int interrupted_exit_code() {
  const int sig = stop_signal();
  return 128 + (sig > 0 ? sig : SIGINT);
}

std::map<std::string, double> read_last_metrics(const std::string& path) {
  const auto records = read_metrics(path);
  return records.empty() ? std::map<std::string, double>{} : records.back();
}

double scheduled_lr(const TrainSettings& t, std::int64_t epoch) {
  if (t.schedule != "warmup_cosine") return t.lr;
  const double w = static_cast<double>(t.warmup_epochs), e = static_cast<double>(epoch);
  if (epoch < t.warmup_epochs) return t.warmup_start_lr + e * (t.lr - t.warmup_start_lr) / std::max(1.0, w - 1.0);
  const double span = std::max(1.0, static_cast<double>(t.epochs) - w);
  return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + std::cos(M_PI * (e - w) / span));
}

RunSummary run_graph(const Graph& graph, const Registry& registry, const RunOptions& options) {
  RunSummary summary;
  std::atomic<bool>& stop = options.stop ? *options.stop : g_interrupted;
  const bool resuming = !options.resume.empty();
  const std::vector<fs::path> candidates = resuming ? resume_candidates(options.resume) : std::vector<fs::path>{};
  if (resuming && candidates.empty())
    throw std::runtime_error("--resume " + options.resume + ": no last.pt or epoch_NNNN.pt there (a run writes them after its first whole epoch)");
  // One writer: in a multi-process run only rank 0 writes into the run
  // directory; the others' run directory is a scratch folder removed at the end.
  const LaunchEnv launch = read_launch_env();
  const bool writer = launch.rank == 0;
  std::optional<ScratchFolder> scratch;
  if (!writer) scratch.emplace("umrflow-rank" + std::to_string(launch.rank) + "-");
  summary.run_dir = !writer ? scratch->path()
                    : resuming ? options.resume
                               : fresh_run_dir(options.run_dir.empty() ? "runs/" + graph.name : options.run_dir);
  // A run that fails while it is set up (a missing split file or checkpoint,
  // a module that does not fit) leaves no run directory behind, so the next
  // try, and the next stage's default init.from, find the plain name. Once
  // the first epoch starts, log.txt holds its progress and stays.
  struct EmptyRunCleanup {
    fs::path path;
    ~EmptyRunCleanup() {
      if (path.empty() || std::uncaught_exceptions() == 0) return;
      std::error_code ec;  // no exception may leave a destructor that runs while one propagates
      for (fs::directory_iterator e(path, ec), end; !ec && e != end; e.increment(ec))
        if (e->path().filename() != "graph.yaml" && e->path().filename() != "log.txt") return;
      if (!ec) fs::remove_all(path, ec);
    }
  } cleanup;
  if (writer && !resuming && !fs::exists(summary.run_dir)) cleanup.path = summary.run_dir;
  fs::create_directories(summary.run_dir);
  const fs::path dir = summary.run_dir;
  if (!resuming) write_file_atomically((dir / "graph.yaml").string(), to_yaml(graph.resolved));
  RunLog log((dir / "log.txt").string(), !options.progress_only && writer);
  const bool terminal = !options.quiet && writer && isatty(STDERR_FILENO);

  torch::Device device = pick_device(graph.execution.device);
  if (device.is_cuda() && !device.has_index()) device = torch::Device(torch::kCUDA, 0);  // one device for the model, the step and the feed
  if (device.is_cuda() && launch.distributed())  // one device per local rank
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(launch.local_rank % std::max<int>(1, torch::cuda::device_count())));
  std::unique_ptr<Collective> group;
  if (launch.distributed()) {
    group = std::make_unique<Collective>(launch, kCollectiveTimeout);
    log("rank " + std::to_string(launch.rank) + " of " + std::to_string(launch.world_size) + " (" + launch.source + "), device " +
        device.str() + "; gradients averaged over the ranks, rank 0 writes");
  }
  // cuDNN picks the fastest convolution algorithm for each shape once; a run's
  // shapes repeat every step (results stay deterministic only up to its choice).
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  const OwnKernelsScope kernels(graph.execution.own_kernels);  // restored when the run returns
  const int configured = options.threads >= 0 ? options.threads : static_cast<int>(graph.execution.threads);
  const int threads = configured > 0 ? configured : automatic_data_threads(device);
  log("run '" + graph.name + "' from " + graph.file + " into " + summary.run_dir + " (device " + device.str() +
      ", data-plane threads " + (threads > 0 ? std::to_string(threads) : std::string("all")) +
      (configured == 0 && threads > 0 ? " beside the step's " + std::to_string(at::get_num_threads()) + " intra-op threads" : std::string()) +
      ", prefetch " +
      std::to_string(std::max(graph.execution.prefetch, graph.batch().params.get_int("size"))) + ")");
  if (device.is_cpu())
    if (const std::string hint = reference_blas_hint(); !hint.empty()) log(hint);

  Instance instance(graph, device, options.defer_checks || !device.is_cpu());
  instance.initialise_modules();
  const bool training = graph.train.enabled;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::optional<StepGradients> gradients;
  if (training) {
    optimizer = make_optimizer(graph.train, instance.trainable_parameters());
    gradients.emplace(*optimizer);
  }
  const std::int64_t epochs = training ? graph.train.epochs : std::max<std::int64_t>(1, options.passes);
  const bool autocast = training && graph.execution.autocast == "bf16";
  DataPlane plane = instance.data_plane(training, graph.execution.prefetch);
  // On CUDA each batch's copy to the device starts on a data-plane thread
  // while the step works on the previous batch (device_feed.h).
  DeviceFeed feed(device);
  if (feed.active()) plane.stage = [&feed](Packet& batch, std::int64_t index) { feed.stage(batch, index); };
  // Training shares each epoch's samples among the ranks; so does an
  // evaluation whose step nodes allow it (Sharding: its report node merges
  // every rank's cases), else it runs whole on every rank. Either way rank
  // 0's report is the single-process one.
  const bool sharded = group && (training || shardable(graph));
  Shares shares = share_samples(instance, plane, group.get(), sharded);
  if (training) shares.padding_from = std::numeric_limits<std::int64_t>::max();  // training's padding is real gradient
  if (sharded && !training)
    log("the " + std::to_string(launch.world_size) + " ranks share the " + std::to_string(instance.samples_per_epoch()) +
        " samples; rank 0 merges the results");
  const std::int64_t batches = batches_per_epoch(sharded ? static_cast<std::int64_t>(plane.indices.size()) : instance.samples_per_epoch(),
                                                 plane.batch_size, plane.drop_last);
  const std::vector<torch::Tensor> buffers = instance.buffers();
  const std::int64_t graph_hash = static_cast<std::int64_t>(hash_name(to_yaml(graph.resolved)));

  std::int64_t first_epoch = 0;
  const bool validating = training && !graph.train.validate_graph.empty();
  double best = graph.train.validate_maximise() ? -INFINITY : INFINITY;
  if (resuming) {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".tmp") {
        log("removing " + e.path().string() + ", left by a run that was killed while writing it");
        fs::remove(e.path());
      }
    std::optional<Instance::CheckpointState> loaded;
    std::string failures;
    for (const auto& c : candidates) {
      try {
        loaded = instance.load_checkpoint(c.string(), optimizer.get(), graph_hash, [&](const std::string& l) { log(l); });
        if (!failures.empty()) log("resuming from " + c.filename().string() + ", the newest whole checkpoint (" + failures + ")");
        break;
      } catch (const std::exception& e) {
        failures += (failures.empty() ? "" : "; ") + std::string(e.what());
      }
    }
    if (!loaded) throw std::runtime_error("--resume " + options.resume + ": no checkpoint there can be read: " + failures);
    const auto& state = *loaded;
    first_epoch = state.epoch;
    trim_metrics((dir / "metrics.jsonl").string(), first_epoch);
    if (state.best) best = *state.best;
    log("resuming " + summary.run_dir + " after epoch " + std::to_string(first_epoch));
    // graph.yaml: the graph the run goes on with (more epochs, say), once its checkpoint has been taken.
    write_file_atomically((dir / "graph.yaml").string(), to_yaml(graph.resolved));
    summary.epochs_done = first_epoch;
  }

  // execution.sync_bn: BatchNorm layers sum their statistics over the ranks
  // during each training step (umrflow/rank_sync.h).
  RankSync batch_sync;
  const bool sync_bn = sharded && training && graph.execution.sync_bn;
  if (sync_bn) {
    batch_sync.rank = launch.rank;
    batch_sync.size = launch.world_size;
    batch_sync.sum = [&group](const torch::Tensor& t) { group->sum({t}); };
    log("execution.sync_bn: BatchNorm statistics over the " + std::to_string(launch.world_size) + " ranks' rows");
  }

  if (group) {  // every rank starts from rank 0's weights
    std::vector<torch::Tensor> weights;
    for (auto& [name, t] : instance.weights()) weights.push_back(t);
    group->broadcast(weights);
  }

  // Gradients are averaged in buckets, launched during the backward pass.
  std::unique_ptr<GradientReducer> reducer;
  bool reported_buckets = false;
  if (group && training)
    reducer = std::make_unique<GradientReducer>(
        *group, instance.trainable_parameters(),
        graph.execution.bucket_mb > 0 ? static_cast<std::size_t>(graph.execution.bucket_mb * 1024 * 1024) : SIZE_MAX);

  bool warned_bottleneck = false;
  auto checkpoint = [&](const std::string& name, std::int64_t epoch) {
    if (!writer) return;
    auto tensors = instance.weights();
    tensors.emplace_back("umrflow.epoch", torch::tensor(epoch, torch::kInt64));
    tensors.emplace_back("umrflow.seed", torch::tensor(static_cast<std::int64_t>(graph.seed), torch::kInt64));
    tensors.emplace_back("umrflow.graph_hash", torch::tensor(graph_hash, torch::kInt64));
    if (validating) tensors.emplace_back("umrflow.best", torch::tensor(best, torch::kFloat64));
    save_checkpoint((dir / name).string(), tensors, optimizer.get());
  };

  cleanup.path.clear();  // set up: from here on the run directory stays
  for (std::int64_t epoch = first_epoch; epoch < epochs; ++epoch) {
    ScalarMeans means;
    if (training)
      for (auto& group : optimizer->param_groups()) group.options().set_lr(scheduled_lr(graph.train, epoch));
    // --quiet: progress lines go to log.txt only; epoch summaries still reach stderr.
    Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs), batches, terminal,
                      [&](const std::string& l) { log(l, options.quiet, true); });
    const auto start = std::chrono::steady_clock::now();
    instance.set_training(training);
    feed.clear();  // a batch staged by a stopped epoch is never taken
    instance.clear_checks();
    reset_device_peak(device);
    std::optional<OpProfile> profile;
    if (options.profile_last_epoch && epoch + 1 == epochs) profile.emplace();
    std::string shown;
    EpochResult r = reporting_kept_checks(instance, [&] { return run_joined_epoch(plane, epoch, threads, shares, stop, [&](Packet& batch, std::int64_t index, const Presence& present) {
      try {
        feed.take(batch, index);
        for (auto& [k, t] : batch.tensors) {
          t = t.to(device, /*non_blocking=*/true);
          if (graph.execution.channels_last) t = channels_last(t);
        }
      } catch (const std::exception& e) {
        throw NodeError(plane.batch_id, "batch", batch.sample_names(), std::string("moving the batch to ") + device.str() + ": " + e.what());
      }
      if (present.count < launch.world_size && sync_bn) throw std::runtime_error(kUnevenWithSyncBn);
      std::map<std::string, Packet> outs;
      // Steps that wait for the device: the loss is checked and shown.
      const bool checked = index % graph.execution.log_every == 0 || index + 1 == batches;
      if (training) {
        const std::string& objective_type = graph.find(graph.train.objective)->type;
        // The finite check and backward of one loss (the batch's, or one group's).
        const auto backward = [&](const torch::Tensor& loss, const std::string& part) {
          const AutocastScope::Pause pause;  // a group's backward comes between forwards
          if (checked) instance.read_checks();  // a bad input before the loss it makes
          if (checked && !torch::isfinite(loss).all().item<bool>())
            throw NodeError(graph.train.objective, objective_type, batch.sample_names(),
                            "the loss" + (part.empty() ? std::string() : " of " + part) +
                                " is not finite (NaN or infinity); check the inputs and the learning rate");
          try {
            RECORD_USER_SCOPE("backward");
            loss.backward();
          } catch (const std::exception& e) {
            throw NodeError(graph.train.objective, objective_type, batch.sample_names(),
                            "in the backward pass" + (part.empty() ? std::string() : " of " + part) + ": " + e.what());
          }
        };
        const bool grouped = !graph.train.accumulate_groups.empty();
        // As DDP: every step starts from one rank's buffers (BatchNorm statistics).
        if (sharded && !buffers.empty()) group->broadcast(buffers, present.root);
        const RankSyncScope synced(sync_bn ? &batch_sync : nullptr);
        try {
          const AutocastScope scope(autocast, device);
          if (grouped) {
            gradients->clear();
            outs = instance.run_step_grouped(batch, epoch, index, backward);
          } else {
            outs = instance.run_step(batch, epoch, index, true);
          }
        } catch (const NodeError&) {
          throw;
        } catch (const std::exception& e) {
          if (!grouped) throw;
          throw NodeError(graph.train.objective, objective_type, batch.sample_names(), e.what());
        }
        try {
          if (!grouped) {
            gradients->clear();
            if (reducer) reducer->arm();  // the sums start during this backward pass
            backward(outs.at(graph.train.objective).at("loss"), "");
          }
          if (reducer) {
            reducer->finish();
            if (!reported_buckets) {
              reported_buckets = true;
              log("gradients averaged in " + std::to_string(reducer->buckets()) + " bucket(s) (execution.bucket_mb " +
                  json_number(graph.execution.bucket_mb) + "); " + std::to_string(reducer->launched_early()) +
                  " launched during the backward pass of the first step");
            }
          }
          RECORD_USER_SCOPE("optimizer step");
          gradients->step();
        } catch (const NodeError&) {
          throw;
        } catch (const std::exception& e) {
          throw NodeError(graph.train.objective, objective_type, batch.sample_names(),
                          std::string("in the optimizer step: ") + e.what());
        }
      } else {
        torch::NoGradGuard no_grad;
        outs = instance.run_step(batch, epoch, index, false);
      }
      if (checked) instance.read_checks();  // step nodes' checks of values (umrflow/step_checks.h)
      if (index < shares.padding_from) means.add(outs, /*skip_non_finite=*/false);  // an evaluation's padding repeats others' samples
      if (auto it = outs.find(graph.train.objective); checked && it != outs.end() && it->second.has("loss"))
        shown = "loss " + json_number(it->second.at("loss").item<double>());
      progress.advance(1, shown);  // the last checked step's loss
    }, [&](const Presence& present) {
      // A rank whose share ran out first takes part in the others' remaining
      // steps with no gradient of its own, so its weights follow theirs.
      if (!training) return;
      if (sync_bn) throw std::runtime_error(kUnevenWithSyncBn);
      if (!buffers.empty()) group->broadcast(buffers, present.root);
      gradients->clear();
      reducer->finish();
      gradients->step();
    }, [&](int root) {
      // Every rank ends the epoch with the buffers of a rank that took the
      // last step (rank 0 writes them, and may have joined early).
      if (training && !buffers.empty()) group->broadcast(buffers, root);
    }); });
    instance.read_checks();  // those kept since the last logged step, before any figure or checkpoint
    if (profile) {
      summary.profile = profile->rows();
      summary.profile_steps = r.batches;
      profile.reset();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r.samples == 0 && !r.stopped)
      throw std::runtime_error("epoch " + std::to_string(epoch + 1) + " of " + graph.file + " saw no sample" + skipped_list(r) +
                               "; nothing was trained or evaluated" + (training ? ", and no checkpoint of this epoch is written" : ""));
    if (!r.skipped.empty()) {
      const bool fresh = !fs::exists(dir / "skipped.tsv");
      std::ofstream skipped(dir / "skipped.tsv", std::ios::app);
      if (fresh) skipped << "epoch\tsample\tnode\treason\n";
      for (const auto& s : r.skipped) skipped << epoch + 1 << "\t" << s.sample << "\t" << s.node << "\t" << s.reason << "\n";
      log("epoch " + std::to_string(epoch + 1) + ": skipped " + std::to_string(r.skipped.size()) +
          " sample(s), listed in " + (dir / "skipped.tsv").string());
    }
    progress.finish();
    if (sharded) means.reduce(*group);  // the epoch's figures over every rank's samples
    std::map<std::string, double> metrics = means.means();
    metrics["epoch"] = static_cast<double>(epoch + 1);
    metrics["time_s"] = seconds;
    metrics["samples_per_s"] = seconds > 0 ? r.samples / seconds : 0.0;
    metrics["busy_fraction"] = r.busy_fraction();
    metrics["data_wait_s"] = r.wait_seconds;
    metrics["step_median_s"] = r.median_batch_seconds();
    if (const auto peak = device_peak_bytes(device)) metrics["device_peak_mib"] = static_cast<double>(*peak) / (1 << 20);
    record_node_times(dir, epoch, r);
    if (!warned_bottleneck && r.batches >= 2 && r.busy_fraction() < kBusyWarning) {
      warned_bottleneck = true;
      log(bottleneck_warning(r, epoch));
    }
    if (training) metrics["lr"] = scheduled_lr(graph.train, epoch);
    bool stopped = r.stopped, improved = false;
    if (validating && !r.stopped && ((epoch + 1) % graph.train.validate_every == 0 || epoch + 1 == epochs)) {
      char name[32];
      std::snprintf(name, sizeof name, "epoch_%04lld", static_cast<long long>(epoch + 1));
      log("validating with " + graph.train.validate_graph + " into " + (dir / "val" / name).string());
      const auto validated = validate(graph, registry, instance, device, threads, (dir / "val" / name).string(), stop, group.get(),
                                        options.defer_checks || !device.is_cpu());
      if (!validated) {
        stopped = true;
        log("stopped during the validation of epoch " + std::to_string(epoch + 1) + ": that validation is discarded (no score, no best.pt)");
      } else {
        const auto& v = *validated;
        auto it = v.find(graph.train.validate_metric);
        if (it == v.end()) {
          std::string have;
          for (const auto& [k, x] : v) have += (have.empty() ? "" : ", ") + k;
          throw std::runtime_error("train.validate.metric '" + graph.train.validate_metric + "' is not among the validation scalars (" +
                                   (have.empty() ? std::string("none") : have) + ")");
        }
        for (const auto& [k, x] : v) metrics["val." + k] = x;
        improved = graph.train.validate_maximise() ? it->second > best : it->second < best;
        if (improved) best = it->second;
      }
    }
    if (stopped) metrics["partial"] = 1.0;
    std::string line = "{";
    for (const auto& [k, v] : metrics) line += (line.size() > 1 ? ", " : "") + json_quoted(k) + ": " + json_number(v);
    line += "}\n";
    {
      std::ofstream m(dir / "metrics.jsonl", std::ios::app);
      m << line;
    }
    std::string text;
    for (const auto& [k, v] : metrics)
      if (k != "epoch") text += "  " + k + "=" + json_number(v);
    log("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs) + text);
    summary.final_metrics = metrics;
    summary.epochs_done = epoch + 1;
    if (stopped) {
      summary.interrupted = true;
      if (training) {
        checkpoint("interrupted.pt", epoch);
        log("interrupted during epoch " + std::to_string(epoch + 1) + "; its weights are in " + (dir / "interrupted.pt").string() +
            (fs::exists(dir / "last.pt") ? "; continue with `umrflow run --resume " + summary.run_dir + "` from last.pt" : ""));
      } else {
        log("interrupted");
      }
      break;
    }
    if (training) {
      if ((epoch + 1) % graph.train.checkpoint_every == 0 || epoch + 1 == epochs) {
        char name[32];
        std::snprintf(name, sizeof name, "epoch_%04lld.pt", static_cast<long long>(epoch + 1));
        checkpoint(name, epoch + 1);
      }
      checkpoint("last.pt", epoch + 1);
      // An earlier stop's interrupted.pt holds part of an epoch this run has
      // now completed: last.pt supersedes it.
      if (const fs::path stale = dir / "interrupted.pt"; writer && fs::exists(stale)) {
        std::error_code ec;
        if (fs::remove(stale, ec)) {
          forget_digest(stale.string());
          log("removed interrupted.pt of the earlier stop: last.pt (epoch " + std::to_string(epoch + 1) + ") supersedes it");
        }
      }
      if (improved) {
        checkpoint("best.pt", epoch + 1);
        log("best " + graph.train.validate_metric + " so far: " + json_number(best) + " (epoch " + std::to_string(epoch + 1) + ", best.pt)");
      }
    }
  }
  if (write_curves(summary.run_dir)) log("curves: " + (dir / "curves.svg").string());
  const auto figures = finish_pass(instance, summary.run_dir, group.get(), sharded && shardable(graph));
  if (!figures.empty()) {
    std::string text;
    for (const auto& [k, v] : figures) {
      summary.final_metrics[k] = v;
      text += "  " + k + "=" + json_number(v);
    }
    log("summary" + text);
  }
  log("done: " + summary.run_dir);
  return summary;
}

}  // namespace umrflow
