// `synthetic.*`: data sets made on the fly, to run, test and time the engine
// without any data on disk. The learning problem of `synthetic.tensors` is
// linear: `target` is a fixed mix of the `image` channels, so
// `model.channel_mix` can fit it exactly.
#include <torch/torch.h>

#include "builtin.h"
#include "umrflow/declare.h"
#include "umrflow/node.h"

namespace umrflow::nodes {

namespace {

/// `count` samples of Gaussian noise of `shape` (C, spatial...), with a target
/// that mixes the channels by weights (c + 1) / C.
class SyntheticTensors final : public SourceNode {
 public:
  static void declare(Declaration<SyntheticTensors>& d) {
    d.type("synthetic.tensors", NodeKind::source,
           "Gaussian-noise images with a target that is a fixed mix of their channels (for demos and tests).");
    d.param(&SyntheticTensors::count_, param::integer("count", 64, "samples per epoch").min(1));
    d.param(&SyntheticTensors::shape_,
            param::integers("shape", std::vector<std::int64_t>{2, 8, 8, 8}, "image shape: channels, then spatial axes").min(1));
    d.outputs_for([](const Params& p) {
      const int rank = p.has("shape") ? static_cast<int>(p.get_ints("shape").size()) : -1;
      return std::vector<KeySpec>{{"image", rank, "float32 noise, N(0, 1)"}, {"target", rank, "one channel: sum_c (c+1)/C * image_c"}};
    });
  }

  std::int64_t size() const override { return count_; }
  Packet load(std::int64_t index, Context& ctx) override {
    torch::Tensor image = torch::randn(shape_, ctx.generator());
    const auto c = shape_[0];
    torch::Tensor w = torch::arange(1, c + 1, torch::kFloat32) / static_cast<double>(c);
    std::vector<std::int64_t> wshape(shape_.size(), 1);
    wshape[0] = c;
    Packet p;
    p.tensors["image"] = image;
    p.tensors["target"] = (image * w.view(wshape)).sum(0, /*keepdim=*/true);
    p.samples.push_back({index, "synthetic_" + std::to_string(index), {}});
    return p;
  }

 private:
  std::int64_t count_ = 0;
  std::vector<std::int64_t> shape_;
};

}  // namespace

void register_synthetic_nodes(Registry& registry) { add_nodes<SyntheticTensors>(registry); }

}  // namespace umrflow::nodes
