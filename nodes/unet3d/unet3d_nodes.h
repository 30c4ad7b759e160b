// unet3d_nodes.h: what the adapter nodes (unimrseg/unimrseg_nodes.cpp) use of
// the `unet3d.*` module nodes: the encoder node an adapter links to, and the
// five levels as a packet (keys features.1 .. features.5).
#pragma once

#include <cstdint>
#include <vector>

#include "umrflow/declare.h"
#include "umrflow/module.h"
#include "unimrseg/unimrseg_parts.h"

namespace umrflow::nodes {

Packet levels_packet(const model::Levels& f);
model::Levels levels_of(const Packet& p);
std::vector<KeySpec> level_keys();

/// `unet3d.encoder`: inc, down1..down3 and the 3D ASPP as one module. An
/// adapter module finds it by id (link()) and runs its stages.
class EncoderNode final : public ModuleNode {
 public:
  static void declare(Declaration<EncoderNode>& d);
  void setup();

  torch::nn::Module& module() override { return *encoder_; }
  Packet forward(const std::vector<Packet>& in, Context&) override;
  /// The plain path, honouring `freeze` and `bn_update`.
  model::Levels encode(const torch::Tensor& x) { return encoder_->encode_plain(x, freeze_, bn_update_); }
  model::UNet3DEncoderImpl& encoder() { return *encoder_; }
  std::int64_t in_channels() const { return in_channels_; }

 private:
  std::int64_t in_channels_ = 0;
  std::vector<std::int64_t> widths_, rates_;
  bool freeze_ = false, bn_update_ = false;
  model::UNet3DEncoder encoder_{nullptr};
};

}  // namespace umrflow::nodes
