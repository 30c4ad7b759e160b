// image2d_nodes.h: the `image2d.*` source nodes, declared here so that the
// family's one list (register_image2d_nodes, image2d_nodes.cpp) sees them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image2d/layouts.h"
#include "umrflow/declare.h"
#include "umrflow/node.h"

namespace umrflow::image2d {

/// Source: one RGB-D or RGB-T SOD sample per image of root/RGB. Provides
/// `image` (4, H, W) float32, R, G, B and the second modality as gray, each
/// / 255 (as torchvision's ToTensor), and `label` (1, H, W) float32, the mask
/// / 255. A sample whose images cannot be read or differ in size fails the
/// run with an error naming the files, or is skipped (`on_bad_sample: skip`).
class SodSamples final : public SourceNode {
 public:
  static void declare(Declaration<SodSamples>& d);
  /// Finds the samples (discover_sod), then keeps the first `limit`.
  void setup();

  std::int64_t size() const override { return static_cast<std::int64_t>(items_.size()); }
  Packet load(std::int64_t index, Context&) override;

 private:
  std::string root_, aux_, on_bad_sample_;
  bool need_label_ = true;
  std::int64_t limit_ = 0;
  std::vector<PairedItem> items_;
};

}  // namespace umrflow::image2d
