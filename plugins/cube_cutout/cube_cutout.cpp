// Example umrflow plugin: `mask.cube_cutout`, a data-plane node that blanks
// random cubes of a sample's `image` (all channels) and records where, as
// `cutout_mask` (1 inside a cube). Built as a shared library against the
// umrflow CMake package; see docs/plugins.md.
#include <torch/torch.h>

#include <umrflow/declare.h>
#include <umrflow/node.h>
#include <umrflow/plugin.h>

namespace {

class CubeCutout final : public umrflow::SampleNode {
 public:
  // The one declaration: name, kind, ports, and each parameter bound to the
  // member that receives its value.
  static void declare(umrflow::Declaration<CubeCutout>& d) {
    using umrflow::param::integer, umrflow::param::number;
    d.type("mask.cube_cutout", umrflow::NodeKind::sample,
           "Blanks `count` random cubes of side `side` in `image` (all channels); writes `cutout_mask`.");
    d.input({"in", {{"image", -1, "channels first"}}, "the sample"});
    d.output({"cutout_mask", -1, "1 inside a cube, 0 elsewhere; one channel"});
    d.param(&CubeCutout::count_, integer("count", 1, "cubes per sample").range(0, 1000));
    d.param(&CubeCutout::side_, integer("side", 8, "cube side in voxels (clipped to the image)").min(1));
    d.param(&CubeCutout::fill_, number("fill", 0.0, "value written inside the cubes"));
  }

  void apply(umrflow::Packet& sample, umrflow::Context& ctx) override {
    torch::Tensor& image = sample.at("image");
    if (image.dim() < 2) throw std::runtime_error("'image' needs a channel axis and at least one spatial axis");
    torch::Tensor mask = torch::zeros_like(image.select(0, 0)).unsqueeze(0);
    image = image.clone();
    for (std::int64_t k = 0; k < count_; ++k) {
      torch::Tensor region = image, region_mask = mask;
      for (std::int64_t axis = 1; axis < image.dim(); ++axis) {
        const std::int64_t side = std::min(side_, image.size(axis));
        std::uniform_int_distribution<std::int64_t> start(0, image.size(axis) - side);
        const std::int64_t s = start(ctx.engine());
        region = region.narrow(axis, s, side);
        region_mask = region_mask.narrow(axis, s, side);
      }
      region.fill_(fill_);
      region_mask.fill_(1.0);
    }
    sample.tensors["cutout_mask"] = mask;
  }

 private:
  std::int64_t count_ = 0, side_ = 0;
  double fill_ = 0;
};

void register_nodes(umrflow::Registry& registry) { umrflow::add_nodes<CubeCutout>(registry); }

}  // namespace

UMRFLOW_PLUGIN("cube_cutout", register_nodes)
