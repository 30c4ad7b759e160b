// Launcher environments and sample sharding (umrflow/distributed.h).
#include "umrflow/distributed.h"

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace umrflow {

namespace {

int integer_of(const char* name, const char* text, int low, int high) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < low || v > high)
    throw std::runtime_error(std::string(name) + "='" + text + "' is not a whole number from " + std::to_string(low) + " to " +
                             std::to_string(high) + " (set by the launcher: torchrun or srun)");
  return static_cast<int>(v);
}

}  // namespace

LaunchEnv read_launch_env(const std::function<const char*(const char*)>& getenv_fn) {
  const auto get = [&](const char* name) -> const char* {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  };
  LaunchEnv env;
  const char *rank = get("RANK"), *world = get("WORLD_SIZE"), *local = get("LOCAL_RANK");
  const char* rank_name = "RANK";
  const char* world_name = "WORLD_SIZE";
  const char* local_name = "LOCAL_RANK";
  if (world) {
    env.source = "torchrun";
  } else if (get("SLURM_NTASKS") && get("SLURM_PROCID")) {
    env.source = "slurm";
    rank = get("SLURM_PROCID"), world = get("SLURM_NTASKS"), local = get("SLURM_LOCALID");
    rank_name = "SLURM_PROCID", world_name = "SLURM_NTASKS", local_name = "SLURM_LOCALID";
  } else {
    return env;
  }
  env.world_size = integer_of(world_name, world, 1, 1 << 20);
  if (!rank) throw std::runtime_error(std::string(world_name) + " is set but " + rank_name + " is not (start the processes with torchrun or srun)");
  env.rank = integer_of(rank_name, rank, 0, env.world_size - 1);
  env.local_rank = local ? integer_of(local_name, local, 0, env.world_size - 1) : 0;
  if (env.world_size > 1) {
    const char *addr = get("MASTER_ADDR"), *port = get("MASTER_PORT");
    if (!addr || !port)
      throw std::runtime_error(std::string(world_name) + "=" + std::to_string(env.world_size) + " needs MASTER_ADDR and MASTER_PORT " +
                               "(the address and a free port of the rank-0 host; torchrun sets them, with srun export them)");
    env.master_addr = addr;
    env.master_port = integer_of("MASTER_PORT", port, 1, 65535);
  }
  return env;
}

std::vector<std::int64_t> shard_indices(std::int64_t samples, int rank, int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size) throw std::invalid_argument("shard_indices: rank outside the world");
  std::vector<std::int64_t> out;
  if (samples <= 0) return out;
  const std::int64_t per_rank = (samples + world_size - 1) / world_size;
  for (std::int64_t k = 0; k < per_rank; ++k) out.push_back((rank + k * world_size) % samples);
  return out;
}

}  // namespace umrflow
