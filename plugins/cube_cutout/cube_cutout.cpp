// Example umrflow plugin: `mask.cube_cutout`, a data-plane node that blanks
// random cubes of a sample's `image` (all channels) and records where, as
// `cutout_mask` (1 inside a cube). Built as a shared library against the
// umrflow CMake package; see docs/plugins.md.
#include <torch/torch.h>

#include <umrflow/node.h>
#include <umrflow/plugin.h>

namespace {

class CubeCutout final : public umrflow::SampleNode {
 public:
  explicit CubeCutout(const umrflow::Params& p)
      : count_(p.get_int("count")), side_(p.get_int("side")), fill_(p.get_number("fill")) {}

  void apply(umrflow::Packet& sample, umrflow::Context& ctx) override {
    torch::Tensor& image = sample.at("image");
    if (image.dim() < 2) throw std::runtime_error("'image' needs a channel axis and at least one spatial axis");
    torch::Tensor mask = torch::zeros_like(image.select(0, 0)).unsqueeze(0);
    image = image.clone();
    for (std::int64_t k = 0; k < count_; ++k) {
      torch::Tensor region = image, region_mask = mask;
      for (std::int64_t axis = 1; axis < image.dim(); ++axis) {
        const std::int64_t extent = image.size(axis);
        const std::int64_t side = std::min(side_, extent);
        std::uniform_int_distribution<std::int64_t> start(0, extent - side);
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
  std::int64_t count_, side_;
  double fill_;
};

void register_nodes(umrflow::Registry& registry) {
  umrflow::NodeSpec spec;
  spec.type = "mask.cube_cutout";
  spec.kind = umrflow::NodeKind::sample;
  spec.summary = "Blanks `count` random cubes of side `side` in `image` (all channels); writes `cutout_mask`.";
  spec.params = {
      umrflow::param::integer("count", 1, "cubes per sample").range(0, 1000),
      umrflow::param::integer("side", 8, "cube side in voxels (clipped to the image)").min(1),
      umrflow::param::number("fill", 0.0, "value written inside the cubes"),
  };
  spec.inputs = {umrflow::PortSpec{"in", {{"image", -1, "channels first"}}, "the sample"}};
  spec.outputs = {{"cutout_mask", -1, "1 inside a cube, 0 elsewhere; one channel"}};
  spec.create = [](const umrflow::Params& p) { return std::make_unique<CubeCutout>(p); };
  registry.add(std::move(spec));
}

}  // namespace

UMRFLOW_PLUGIN("cube_cutout", register_nodes)
