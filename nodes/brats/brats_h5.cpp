// The BraTS HDF5 cache: `umrflow convert brats` writes it, `brats.h5` reads it.
#include <torch/torch.h>

#include "brats/brats.h"
#include "builtin.h"
#include "io/h5cache.h"
#include "umrflow/node.h"

namespace umrflow::brats {

void convert_to_cache(const std::string& src, const std::string& out, const std::vector<std::string>& modalities,
                      const std::vector<std::string>& regions, const std::function<void(std::int64_t, std::int64_t)>& progress) {
  const auto cases = discover_cases(src, modalities);
  if (cases.empty()) throw std::runtime_error("no BraTS cases under '" + src + "'");
  io::write_cache(out, modalities, regions, static_cast<std::int64_t>(cases.size()),
                  [&](std::int64_t i) {
                    const Case& c = cases[i];
                    try {
                      LoadedCase l = read_case(c, modalities, regions, true);
                      return io::CaseData{c.id, l.image, l.label, l.affine};
                    } catch (const std::exception& e) {
                      throw std::runtime_error("case " + c.id + ": " + e.what() + " (nothing was written to '" + out + "')");
                    }
                  },
                  progress);
}

namespace {

/// Source: cases from the HDF5 cache. Emulates the foreground crop rounded up
/// to multiples of k (the stored box is the foreground box) followed by a
/// uniform random crop, reading only the window's chunks.
class BratsH5 final : public SourceNode {
 public:
  explicit BratsH5(const Params& p)
      : reader_(std::make_unique<io::CacheReader>(p.get_text("file"))), crop_(p.get_ints("crop")), k_(p.get_ints("k_divisible")) {
    count_ = static_cast<std::int64_t>(reader_->cases().size());
    if (p.get_int("limit") > 0) count_ = std::min(count_, p.get_int("limit"));
  }
  std::int64_t size() const override { return count_; }
  Packet load(std::int64_t index, Context& ctx) override {
    const io::CachedCase& c = reader_->cases().at(index);
    std::vector<std::int64_t> start(3), size(3);
    for (int a = 0; a < 3; ++a) {
      const std::int64_t len = c.stored_shape[a + 1];
      const std::int64_t padded = (len + k_[a] - 1) / k_[a] * k_[a];
      const std::int64_t pad_start = -(padded - len) / 2;
      size[a] = crop_[a] > 0 ? std::min(crop_[a], padded) : padded;
      start[a] = pad_start + std::uniform_int_distribution<std::int64_t>(0, padded - size[a])(ctx.engine());
    }
    auto [image, label] = reader_->read(static_cast<std::size_t>(index), start, size);
    Packet p;
    p.tensors["image"] = image;
    p.tensors["label"] = label;
    p.tensors["affine"] = torch::tensor(c.affine, torch::kFloat64).view({4, 4});
    SampleMeta meta;
    meta.id = c.id;
    meta.tags["shape"] = c.original_shape;
    meta.tags["crop_start"] = {c.box_start[0] + start[0], c.box_start[1] + start[1], c.box_start[2] + start[2]};
    p.samples.push_back(std::move(meta));
    return p;
  }

 private:
  std::unique_ptr<io::CacheReader> reader_;
  std::vector<std::int64_t> crop_, k_;
  std::int64_t count_ = 0;
};

}  // namespace

}  // namespace umrflow::brats

namespace umrflow::nodes {

void register_brats_h5_nodes(Registry& registry) {
  NodeSpec s;
  s.type = "brats.h5";
  s.kind = NodeKind::source;
  s.summary = "Cases from a `umrflow convert brats` cache: foreground box rounded to k, then a random crop read by hyperslab.";
  s.params = {
      param::text("file", std::nullopt, "the cache file (.h5)"),
      param::integers("crop", std::vector<std::int64_t>{128, 128, 128}, "random crop size; 0 on an axis keeps the whole padded box").length(3).min(0),
      param::integers("k_divisible", std::vector<std::int64_t>{128, 128, 128}, "the foreground box is rounded up to multiples of this").length(3).min(1),
      param::integer("limit", 0, "use only the first N cases; 0 = all").min(0),
  };
  s.outputs = {{"image", 4, "float32 (modalities, x, y, z)"}, {"label", 4, "uint8 (regions, x, y, z)"}, {"affine", 2, "float64 4x4"}};
  s.create = [](const Params& p) { return std::make_unique<brats::BratsH5>(p); };
  registry.add(std::move(s));
}

}  // namespace umrflow::nodes
