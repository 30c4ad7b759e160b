#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "test_util.h"
#include "umrflow/distributed.h"

namespace umrflow {

namespace {

std::function<const char*(const char*)> env_of(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
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

}  // namespace umrflow
