// umrflow/distributed.h: what a process learns from its launcher, and how an
// epoch's samples are shared among processes.
//
// torchrun (and `python -m torch.distributed.run`) starts one process per
// device with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set;
// Slurm's srun sets SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID instead (the
// job script exports MASTER_ADDR and MASTER_PORT). Without either, the process
// runs alone (world size 1).
//
// Samples are shared as PyTorch's DistributedSampler does without shuffling:
// the epoch's sample list is padded to a multiple of the world size by
// repeating its first samples, and rank r takes every world-th one from r. So
// the samples of global batch k (per-rank batch b, world W) are samples
// k*W*b .. (k+1)*W*b - 1 of the list, whatever W is, and every sample's
// random draws stay keyed by (seed, epoch, sample, node).
//
// This header has no dependency on torch.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace umrflow {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;  // empty when alone
  int master_port = 0;
  std::string source;  // "torchrun", "slurm" or "" (alone), for messages
  bool distributed() const { return world_size > 1; }
};

/// Reads the launcher's variables through `getenv` (std::getenv by default).
/// Throws std::runtime_error naming the variable for a value that is not a
/// number, out of range (rank >= world size), or missing beside the others
/// (WORLD_SIZE > 1 without MASTER_ADDR or MASTER_PORT).
LaunchEnv read_launch_env(const std::function<const char*(const char*)>& getenv = nullptr);

/// The sample indices of `rank` among `world_size` processes for an epoch of
/// `samples` samples (DistributedSampler with shuffle=False, drop_last=False).
std::vector<std::int64_t> shard_indices(std::int64_t samples, int rank, int world_size);

}  // namespace umrflow
