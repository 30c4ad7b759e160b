// umrflow/random.h: per-draw random streams, independent of thread timing.
//
// No node ever uses a shared generator. Each call of a node gets a stream whose
// seed is derived from (run seed, epoch, sample or batch index, node id), so
// the same seed gives the same draws with one worker thread or many, in any
// order of execution, and after a resume from the middle of a run.
//
// This header has no dependency on torch.
#pragma once

#include <cstdint>
#include <string>

namespace umrflow {

/// FNV-1a of a node id: stable across builds and platforms.
std::uint64_t hash_name(const std::string& name);

/// Mixes the four coordinates of a draw into one 64-bit seed (SplitMix64
/// finaliser over each in turn); distinct inputs give unrelated seeds.
std::uint64_t derive_seed(std::uint64_t run_seed, std::int64_t epoch, std::int64_t index,
                          const std::string& node_id);

}  // namespace umrflow
