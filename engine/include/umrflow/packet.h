// umrflow/packet.h: what flows along the edges of a graph.
//
// A Packet is a set of named tensors plus, for each sample it holds, the
// sample's metadata. On the data plane a packet holds one sample; the `batch`
// node stacks packets key by key along a new leading axis and concatenates
// their metadata, so a batch packet holds several. Tensors are reference
// counted: copying a packet copies handles, not data.
//
// Metadata is deliberately generic (the engine knows nothing about MRI): an id,
// the sample's index in its epoch, and named integer lists that nodes use for
// things like a present-modality mask or a channel permutation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

namespace umrflow {

struct SampleMeta {
  std::int64_t index = -1;  // position in the epoch's sample order
  std::string id;           // a readable name: a case id, a file name
  std::map<std::string, std::vector<std::int64_t>> tags;
};

struct Packet {
  std::map<std::string, torch::Tensor> tensors;
  std::vector<SampleMeta> samples;

  bool has(const std::string& key) const { return tensors.count(key) != 0; }
  /// The tensor at `key`; throws std::out_of_range naming the key and the keys present.
  const torch::Tensor& at(const std::string& key) const;
  torch::Tensor& at(const std::string& key);
  /// Sample ids joined with ',' for messages ("case_007" or "a,b").
  std::string sample_names() const;
};

/// Stacks packets key by key along a new axis 0. All packets must have the same
/// keys and, per key, the same shape and dtype; otherwise std::invalid_argument
/// names the key and the two samples that differ.
Packet collate(const std::vector<Packet>& samples);

}  // namespace umrflow
