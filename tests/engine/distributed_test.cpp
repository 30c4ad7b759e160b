#include <gtest/gtest.h>

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

#include "test_paths.h"
#include "test_util.h"
#include "umrflow/distributed.h"

// A build without Gloo's headers has no multi-process runs (CMakeLists.txt).
#if defined(UMRFLOW_HAVE_GLOO) && !UMRFLOW_HAVE_GLOO
#define NEED_GLOO() GTEST_SKIP() << "built without Gloo's headers: no multi-process runs"
#else
#define NEED_GLOO()
#endif

namespace umrflow {

namespace {

std::function<const char*(const char*)> env_of(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

const std::string kBin = UMRFLOW_BINARY;
// The demo graph with plain SGD on 4^3 volumes: float32 sums in another order
// (two half batches, then the average) differ in the last bits, and Adam
// (dividing by each gradient's root mean square) or long reductions over big
// volumes would enlarge that past 1e-6; here it stays near 5e-7.
const std::string kDemo = std::string(UMRFLOW_SOURCE_DIR) +
                          "/graphs/demo.yaml --set train.optimizer.type=sgd --set train.optimizer.lr=0.1 --set 'data.source.shape=[4, 4, 4, 4]'";

/// Starts `world` processes of `umrflow ARGS` with the variables torchrun
/// sets (rank r logs to DIR/rank<r>.log, its shell's pid in DIR/pid<r>) and
/// waits for all; returns their exit statuses. `after_start` runs in the shell
/// once they are started. Rank 0 runs under `timeout 150`.
std::vector<int> run_ranks(int world, const std::string& args, const std::string& dir, const std::string& after_start = "") {
  static std::mt19937 rng(std::random_device{}());
  const int port = 20000 + static_cast<int>(rng() % 30000);
  std::string script;
  for (int r = 0; r < world; ++r) {
    const std::string n = std::to_string(r);
    script += "(RANK=" + n + " WORLD_SIZE=" + std::to_string(world) + " LOCAL_RANK=" + n + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
              std::to_string(port) + (r == 0 ? " timeout 150 " : " ") + kBin + " " + args + " > " + dir + "/rank" + n +
              ".log 2>&1; echo $? > " + dir + "/rc" + n + ") & echo $! > " + dir + "/pid" + n + "\n";
  }
  script += after_start + "\nwait\n";
  std::ofstream(dir + "/ranks.sh") << script;
  test::run_command("bash " + dir + "/ranks.sh", nullptr);
  std::vector<int> rc;
  for (int r = 0; r < world; ++r) {
    std::ifstream in(dir + "/rc" + std::to_string(r));
    int v = -1;
    in >> v;
    rc.push_back(v);
  }
  return rc;
}

torch::Tensor tensor_of(const std::string& checkpoint, const std::string& key) {
  torch::serialize::InputArchive a;
  a.load_from(checkpoint);
  torch::Tensor t;
  a.read(key, t);
  return t;
}

std::string log_of(const std::string& dir, int rank) {
  std::ifstream in(dir + "/rank" + std::to_string(rank) + ".log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Weights of the demo's network in two checkpoints agree within `tol`
/// relative to the network's largest weight (the bias is near zero, so
/// relative to itself it would measure nothing but rounding).
void expect_same_weights(const std::string& a, const std::string& b, double tol) {
  const double scale = tensor_of(a, "net.weight").abs().max().item<double>();
  for (const char* key : {"net.weight", "net.bias"}) {
    const torch::Tensor x = tensor_of(a, key), y = tensor_of(b, key);
    EXPECT_LE((x - y).abs().max().item<double>() / scale, tol) << key << " of " << a << " and " << b;
  }
}

/// The largest difference between two checkpoints' tensors whose names start
/// with `prefix` and contain `part`, relative to the largest magnitude among
/// them; the number compared in `count`.
double largest_difference(const std::string& a, const std::string& b, const std::string& part, int& count) {
  torch::serialize::InputArchive archive;
  archive.load_from(a);
  double diff = 0, scale = 0;
  count = 0;
  for (const auto& key : archive.keys()) {
    if (key.rfind("net.", 0) != 0 || key.find(part) == std::string::npos) continue;
    const torch::Tensor x = tensor_of(a, key).to(torch::kFloat64), y = tensor_of(b, key).to(torch::kFloat64);
    diff = std::max(diff, (x - y).abs().max().item<double>());
    scale = std::max(scale, x.abs().max().item<double>());
    ++count;
  }
  return scale > 0 ? diff / scale : diff;
}

/// `cases` phantom cases of 16^3 in DIR/data with a split file, the FLAIR
/// scan of the `cut`-th (0-based, in name order) cut short: unreadable, so a
/// run with on_bad_case=skip skips it. Returns the arguments of a two-epoch
/// baseline run on all of them with batch 1 (no --out).
std::string phantoms_with_a_cut_case(const std::string& d, int cases, int cut) {
  std::string log;
  EXPECT_EQ(test::run_command(kBin + " synth brats --cases " + std::to_string(cases) + " --size 16 --out " + d + "/data 2>&1 && " + kBin +
                                  " split --from " + d + "/data --val 0.5 --test 0 --out " + d + "/data/split.yaml 2>&1",
                              &log),
            0)
      << log;
  EXPECT_EQ(test::run_command("for f in $(ls -d " + d + "/data/*/ | sed -n " + std::to_string(cut + 1) +
                                  "p)*flair*; do head -c 200 $f > $f.cut && mv $f.cut $f; done",
                              &log),
            0)
      << log;
  return "run " + std::string(UMRFLOW_SOURCE_DIR) + "/graphs/phantoms/baseline.yaml --quiet --set data.cases.root=" + d +
         "/data --set data.cases.split=" + d + "/data/split.yaml --set data.cases.subset=all" +
         " --set data.cases.on_bad_case=skip --set 'modules.net.widths=[4, 4, 8, 8]' --set 'data.crop.size=[16, 16, 16]'" +
         " --set data.batch.size=1 --set train.epochs=2";
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    read_launch_env(env_of(vars));
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

// Each rank's samples are those of PyTorch's DistributedSampler (shuffle off),
// for every size and world size up to 4, computed by torch itself.
TEST(Distributed, ShardsAsDistributedSampler) {
  std::string out;
  const std::string script =
      "from torch.utils.data.distributed import DistributedSampler as S\n"
      "for n in range(1, 10):\n"
      "  for w in range(1, 5):\n"
      "    for r in range(w):\n"
      "      print(n, w, r, *list(S(range(n), num_replicas=w, rank=r, shuffle=False)))\n";
  if (test::run_command("/usr/bin/python3 -c 'import torch' 2>/dev/null", nullptr) != 0) GTEST_SKIP() << "no python3-torch";
  ASSERT_EQ(test::run_command("/usr/bin/python3 -c \"" + script + "\" 2>&1", &out), 0) << out;
  std::istringstream lines(out);
  int checked = 0;
  for (std::string line; std::getline(lines, line); ++checked) {
    std::istringstream s(line);
    std::int64_t n, w, r;
    s >> n >> w >> r;
    std::vector<std::int64_t> expected;
    for (std::int64_t i; s >> i;) expected.push_back(i);
    EXPECT_EQ(shard_indices(n, static_cast<int>(r), static_cast<int>(w)), expected) << line;
  }
  EXPECT_EQ(checked, 9 * 10);
}

// torchrun's and Slurm's variables are read; alone without them; a bad or
// missing value is an error naming the variable.
TEST(Distributed, ReadsTheLauncherEnvironment) {
  const LaunchEnv alone = read_launch_env(env_of({}));
  EXPECT_EQ(alone.world_size, 1);
  EXPECT_FALSE(alone.distributed());
  const LaunchEnv t = read_launch_env(
      env_of({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29500"}}));
  EXPECT_EQ(t.rank, 3);
  EXPECT_EQ(t.world_size, 4);
  EXPECT_EQ(t.local_rank, 1);
  EXPECT_EQ(t.master_addr, "node7");
  EXPECT_EQ(t.master_port, 29500);
  EXPECT_EQ(t.source, "torchrun");
  const LaunchEnv s = read_launch_env(env_of({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "1"},
                                              {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "1234"}}));
  EXPECT_EQ(s.rank, 1);
  EXPECT_EQ(s.source, "slurm");
  EXPECT_NE(error_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}}).find("RANK='4'"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "two"}}).find("WORLD_SIZE='two'"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).find("needs MASTER_ADDR and MASTER_PORT"), std::string::npos);
  EXPECT_NE(error_of({{"WORLD_SIZE", "2"}}).find("RANK is not"), std::string::npos);
}

// Two processes with half the batch each train the weights of one process
// with the whole batch (gradients averaged, DistributedSampler's shares);
// only rank 0 writes a run directory, and its epoch losses are the whole
// batch's.
TEST(Distributed, TwoRanksTrainAsOneProcessWithTheGlobalBatch) {
  NEED_GLOO();
  test::TempDir dir;
  const std::string d = dir.path();
  std::string log;
  ASSERT_EQ(test::run_command(kBin + " run " + kDemo + " --quiet --set train.epochs=2 --set data.source.count=64 --out " + d + "/one 2>&1", &log), 0) << log;
  const auto rc = run_ranks(2, "run " + kDemo + " --quiet --set train.epochs=2 --set data.source.count=64 --set data.batch.size=4 --out " + d + "/two", d);
  ASSERT_EQ(rc, (std::vector<int>{0, 0})) << log_of(d, 0) << log_of(d, 1);
  EXPECT_NE(log_of(d, 0).find("rank 0 of 2 (torchrun)"), std::string::npos) << log_of(d, 0);
  EXPECT_TRUE(log_of(d, 1).empty()) << log_of(d, 1);
  expect_same_weights(d + "/one/last.pt", d + "/two/last.pt", 1e-6);
  std::ifstream a(d + "/one/metrics.jsonl"), b(d + "/two/metrics.jsonl");
  for (std::string la, lb; std::getline(a, la) && std::getline(b, lb);) {
    const auto mse = [](const std::string& l) { return std::stod(l.substr(l.find("\"mse\": ") + 7)); };
    EXPECT_NEAR(mse(la), mse(lb), 1e-5 * mse(la));  // a mean over the epoch's batches, in float32
  }
  EXPECT_FALSE(std::filesystem::exists(d + "/two.1"));
  EXPECT_NE(log_of(d, 0).find("gradients averaged in 1 bucket(s) (execution.bucket_mb 25); 1 launched during the backward pass"),
            std::string::npos)
      << log_of(d, 0);
}

// Gradients averaged in buckets launched during the backward pass (here one
// per parameter) give the weights of one bucket bit for bit: each element's
// sum over the ranks is the same.
TEST(Distributed, BucketsLaunchedDuringBackwardAverageAsOneBucket) {
  NEED_GLOO();
  test::TempDir dir;
  const std::string d = dir.path();
  const std::string run = "run " + kDemo + " --quiet --set train.epochs=2 --set data.source.count=32 --set data.batch.size=4";
  ASSERT_EQ(run_ranks(2, run + " --set execution.bucket_mb=0 --out " + d + "/one", d), (std::vector<int>{0, 0}))
      << log_of(d, 0) << log_of(d, 1);
  ASSERT_EQ(run_ranks(2, run + " --set execution.bucket_mb=1e-6 --out " + d + "/each", d), (std::vector<int>{0, 0}))
      << log_of(d, 0) << log_of(d, 1);
  EXPECT_NE(log_of(d, 0).find("gradients averaged in 2 bucket(s) (execution.bucket_mb 1e-06); 2 launched during the backward pass"),
            std::string::npos)
      << log_of(d, 0);
  for (const char* key : {"net.weight", "net.bias"})
    EXPECT_TRUE(torch::equal(tensor_of(d + "/one/last.pt", key), tensor_of(d + "/each/last.pt", key))) << key;
}

// A run written by two ranks resumes in one process, and a one-process run in
// two ranks, each ending with the weights of the uninterrupted run.
TEST(Distributed, ResumesAtAnotherWorldSize) {
  NEED_GLOO();
  test::TempDir dir;
  const std::string d = dir.path();
  std::string log;
  const std::string common = " --quiet --set data.source.count=64 ";
  ASSERT_EQ(test::run_command(kBin + " run " + kDemo + common + "--set train.epochs=2 --out " + d + "/whole 2>&1", &log), 0) << log;
  ASSERT_EQ(run_ranks(2, "run " + kDemo + common + "--set train.epochs=1 --set data.batch.size=4 --out " + d + "/a", d),
            (std::vector<int>{0, 0}))
      << log_of(d, 0) << log_of(d, 1);
  ASSERT_EQ(test::run_command(kBin + " run " + kDemo + common + "--set train.epochs=2 --resume " + d + "/a 2>&1", &log), 0) << log;
  expect_same_weights(d + "/whole/last.pt", d + "/a/last.pt", 1e-6);

  ASSERT_EQ(test::run_command(kBin + " run " + kDemo + common + "--set train.epochs=1 --out " + d + "/b 2>&1", &log), 0) << log;
  ASSERT_EQ(run_ranks(2, "run " + kDemo + common + "--set train.epochs=2 --set data.batch.size=4 --resume " + d + "/b", d),
            (std::vector<int>{0, 0}))
      << log_of(d, 0) << log_of(d, 1);
  expect_same_weights(d + "/whole/last.pt", d + "/b/last.pt", 1e-6);
}

// An evaluation started on two ranks shares the cases (3: rank 1's share is
// padded with a repeat of case 0) and writes rank 0's merged report: the
// single-process report, each case once.
TEST(Distributed, EvaluationReportEqualsOneProcess) {
  NEED_GLOO();
  test::TempDir dir;
  const std::string d = dir.path(), r = test::phantom_root();
  const std::string eval = "run " + std::string(UMRFLOW_SOURCE_DIR) + "/graphs/phantoms/eval.yaml --quiet --set data.cases.root=" + r +
                           " --set data.cases.split=" + r + "/split.yaml --set data.cases.subset=all --set modules.net.init=null" +
                           " --set 'modules.net.widths=[4, 8, 8, 8]' --set 'step.seg.window=[16, 16, 16]' --set step.report.hd95=false";
  std::string log;
  ASSERT_EQ(test::run_command(kBin + " " + eval + " --out " + d + "/one 2>&1", &log), 0) << log;
  ASSERT_EQ(run_ranks(2, eval + " --out " + d + "/two", d), (std::vector<int>{0, 0})) << log_of(d, 0) << log_of(d, 1);
  EXPECT_NE(log_of(d, 0).find("the 2 ranks share the 3 samples"), std::string::npos) << log_of(d, 0);
  const auto text = [](const std::string& f) {
    std::ifstream in(f);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  EXPECT_FALSE(text(d + "/one/report.csv").empty());
  EXPECT_EQ(text(d + "/one/report.csv"), text(d + "/two/report.csv"));
  EXPECT_EQ(text(d + "/one/per_case.csv"), text(d + "/two/per_case.csv"));
}

// execution.sync_bn: two ranks with one sample each train the UniMRSeg
// network (BatchNorm after every convolution) as one process with both
// samples: BatchNorm running statistics and weights equal within float32
// rounding. Without it each rank normalises its own sample (as DDP), and the
// statistics differ: the comparison can tell the two apart.
TEST(Distributed, SyncBatchNormEqualsOneProcess) {
  NEED_GLOO();
  test::TempDir dir;
  const std::string d = dir.path();
  const std::string net = std::string(UMRFLOW_SOURCE_DIR) + "/graphs/bench/step_unet3d_cpu.yaml --quiet --set train.epochs=1" +
                          " --set 'modules.net.widths=[4, 4, 8, 8]' --set 'data.source.shape=[4, 16, 16, 16]'" +
                          " --set data.source.count=4 --set train.optimizer.type=sgd --set train.optimizer.lr=0.1";
  std::string log;
  ASSERT_EQ(test::run_command(kBin + " run " + net + " --out " + d + "/one 2>&1", &log), 0) << log;
  // Small buckets: their sums interleave with SyncBatchNorm's during backward.
  ASSERT_EQ(run_ranks(2, "run " + net + " --set data.batch.size=1 --set execution.sync_bn=true --set execution.bucket_mb=0.002 --out " +
                             d + "/sync", d),
            (std::vector<int>{0, 0}))
      << log_of(d, 0) << log_of(d, 1);
  EXPECT_NE(log_of(d, 0).find("execution.sync_bn"), std::string::npos) << log_of(d, 0);
  EXPECT_EQ(log_of(d, 0).find("gradients averaged in 1 bucket(s)"), std::string::npos) << log_of(d, 0);
  ASSERT_EQ(run_ranks(2, "run " + net + " --set data.batch.size=1 --out " + d + "/local", d), (std::vector<int>{0, 0}))
      << log_of(d, 0) << log_of(d, 1);
  int means = 0, vars = 0, weights = 0, local = 0;
  const double mean_diff = largest_difference(d + "/one/last.pt", d + "/sync/last.pt", "running_mean", means);
  const double var_diff = largest_difference(d + "/one/last.pt", d + "/sync/last.pt", "running_var", vars);
  const double weight_diff = largest_difference(d + "/one/last.pt", d + "/sync/last.pt", "weight", weights);
  EXPECT_GE(means, 10);
  EXPECT_EQ(vars, means);
  EXPECT_GE(weights, 20);
  // Measured: about 2e-7, 7e-8 and 6e-8 after these 2 steps; without sync_bn
  // the running means differ by about 4e-2.
  EXPECT_LE(mean_diff, 1e-6);
  EXPECT_LE(var_diff, 1e-6);
  EXPECT_LE(weight_diff, 1e-6);
  EXPECT_GE(largest_difference(d + "/one/last.pt", d + "/local/last.pt", "running_mean", local), 1e-3);
  std::cout << "sync_bn vs one process, largest relative difference: running_mean " << mean_diff << ", running_var " << var_diff
            << ", weights " << weight_diff << "\n";
  // Under bf16 autocast the statistics are still summed in float32 (Gloo has
  // no bf16 sum): the run trains.
  EXPECT_EQ(run_ranks(2, "run " + net + " --set data.batch.size=1 --set execution.sync_bn=true --set execution.autocast=bf16 --out " + d + "/bf16", d),
            (std::vector<int>{0, 0}))
      << log_of(d, 0) << log_of(d, 1);
}

// A case skipped on one rank leaves it a batch short; it joins the other's
// last step with no gradient (PyTorch's Join), so the run ends normally
// instead of waiting on a collective until the timeout. With sync_bn, whose
// forward needs every rank, it is an error that says why.
TEST(Distributed, ASkippedCaseOnOneRankDoesNotStallTheOthers) {
  NEED_GLOO();
  test::TempDir dir;
  const std::string d = dir.path();
  const std::string run = phantoms_with_a_cut_case(d, 4, 0);
  ASSERT_EQ(run_ranks(2, run + " --out " + d + "/two", d), (std::vector<int>{0, 0})) << log_of(d, 0) << log_of(d, 1);
  EXPECT_TRUE(std::filesystem::exists(d + "/two/last.pt"));
  const auto rc = run_ranks(2, run + " --set execution.sync_bn=true --out " + d + "/sync", d);
  EXPECT_EQ(rc, (std::vector<int>{1, 1})) << log_of(d, 0) << log_of(d, 1);
  EXPECT_NE((log_of(d, 0) + log_of(d, 1)).find("execution.sync_bn needs every rank in every step"), std::string::npos)
      << log_of(d, 0) << log_of(d, 1);
}

// A rank left without a batch joins the other's step; the epoch ends with the
// buffers (BatchNorm statistics) of the rank that took it on every rank, so
// rank 0's checkpoint holds them even when rank 0 is the one that joined:
// those of a one-process run that skips the same case (same weights, same
// sample). Either case is cut in turn, so rank 0 joins in one of the two.
TEST(Distributed, AJoinedRankEndsWithTheBuffersOfTheRankThatStepped) {
  NEED_GLOO();
  for (int cut = 0; cut < 2; ++cut) {
    test::TempDir dir;
    const std::string d = dir.path();
    const std::string run = phantoms_with_a_cut_case(d, 2, cut) + " --set train.epochs=1";
    std::string log;
    ASSERT_EQ(test::run_command(kBin + " " + run + " --out " + d + "/one 2>&1", &log), 0) << log;
    ASSERT_EQ(run_ranks(2, run + " --out " + d + "/two", d), (std::vector<int>{0, 0})) << log_of(d, 0) << log_of(d, 1);
    int count = 0;
    EXPECT_LE(largest_difference(d + "/one/last.pt", d + "/two/last.pt", "running_mean", count), 1e-6) << "case " << cut << " cut";
    EXPECT_GE(count, 4);
    EXPECT_LE(largest_difference(d + "/one/last.pt", d + "/two/last.pt", "running_var", count), 1e-6) << "case " << cut << " cut";
  }
}

// A validation pass during two-rank training shares the 3 validation cases
// (rank 1's share padded with a repeat) and rank 0's merged report equals a
// single-process evaluation of the same weights, case for case.
TEST(Distributed, ShardedValidationEqualsOneProcessEvaluation) {
  NEED_GLOO();
  test::TempDir dir;
  const std::string d = dir.path(), data = d + "/data", src = std::string(UMRFLOW_SOURCE_DIR);
  std::string log;
  ASSERT_EQ(test::run_command(kBin + " synth brats --cases 5 --size 16 --out " + data + " 2>&1 && " + kBin + " split --from " + data +
                                  " --val 0.6 --test 0 --out " + data + "/split.yaml 2>&1",
                              &log),
            0)
      << log;
  const std::string common = " --set data.cases.root=" + data + " --set data.cases.split=" + data + "/split.yaml" +
                             " --set 'modules.net.widths=[4, 8, 8, 8]' --set modules.net.init=null";
  const std::string train = "run " + src + "/graphs/phantoms/stage3.yaml --quiet" + common +
                            " --set 'data.crop.size=[16, 16, 16]' --set train.epochs=1 --set 'train.validate.set=[data.cases.subset=val, "
                            "step.report.hd95=false, \"data.cases.root=" + data + "\", \"data.cases.split=" + data +
                            "/split.yaml\", \"modules.net.widths=[4, 8, 8, 8]\", modules.net.init=null, \"step.seg.window=[16, 16, 16]\"]'";
  ASSERT_EQ(run_ranks(2, train + " --out " + d + "/two", d), (std::vector<int>{0, 0})) << log_of(d, 0) << log_of(d, 1);
  const std::string eval = kBin + " run " + src + "/graphs/phantoms/eval.yaml --quiet" + common + " --set data.cases.subset=val" +
                           " --set step.report.hd95=false --set 'step.seg.window=[16, 16, 16]' --set 'modules.net.init={from: " + d +
                           "/two/last.pt}' --out " + d + "/eval 2>&1";
  ASSERT_EQ(test::run_command(eval, &log), 0) << log;
  const auto text = [](const std::string& f) {
    std::ifstream in(f);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  const std::string merged = text(d + "/two/val/epoch_0001/per_case.csv");
  EXPECT_EQ(std::count(merged.begin(), merged.end(), '\n'), 1 + 3 * 15) << merged;  // header, 3 cases x 15 subsets
  EXPECT_EQ(merged, text(d + "/eval/per_case.csv"));
  EXPECT_EQ(text(d + "/two/val/epoch_0001/report.csv"), text(d + "/eval/report.csv"));
}

// When a rank is killed, the other stops with an error that names it, instead
// of waiting for ever.
TEST(Distributed, AKilledRankStopsTheOthers) {
  NEED_GLOO();
  test::TempDir dir;
  const std::string d = dir.path();
  const auto rc = run_ranks(2, "run " + kDemo + " --quiet --set data.source.count=200000 --set train.epochs=1 --set data.batch.size=4 --out " + d + "/k",
                            d,
                            // Once both ranks have joined (a slow start, as under a sanitizer, must not end rank 1 before).
                            "for i in $(seq 600); do grep -q 'rank 0 of 2' " + d + "/rank0.log 2>/dev/null && break; sleep 0.2; done; sleep 3; "
                            "pkill -9 -P $(cat " + d + "/pid1)");
  EXPECT_NE(rc[1], 0);
  EXPECT_EQ(rc[0], 1) << log_of(d, 0);  // not 124: `timeout` did not have to end it
  EXPECT_NE(log_of(d, 0).find("rank 0:"), std::string::npos) << log_of(d, 0);
  EXPECT_NE(log_of(d, 0).find("rank 1 stopped answering"), std::string::npos) << log_of(d, 0);
}

}  // namespace umrflow
