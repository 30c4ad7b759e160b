// The BraTS HDF5 cache: `umrflow convert brats` writes it, `brats.h5` reads it
// (registered with `brats.cases`, in brats_cases.cpp).
#include <torch/torch.h>

#include <algorithm>

#include "brats/brats.h"
#include "brats/brats_nodes.h"
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

void BratsH5::setup() {
  reader_ = std::make_unique<io::CacheReader>(file_, static_cast<std::size_t>(memory_mib_) << 20);
  count_ = static_cast<std::int64_t>(reader_->cases().size());
  if (limit_ > 0) count_ = std::min(count_, limit_);
}

Packet BratsH5::load(std::int64_t index, Context& ctx) {
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

}  // namespace umrflow::brats
