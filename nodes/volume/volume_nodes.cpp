// `volume.*`: per-sample transforms of channel-first volumes (C, X, Y, Z), with
// the semantics of the MONAI transforms the UniMRSeg code uses (defaults as
// there).
// Spatial transforms move every key listed in `keys` together; intensity
// transforms change `image` only.
#include <torch/torch.h>

#include <algorithm>

#include "builtin.h"
#include "umrflow/declare.h"
#include "umrflow/node.h"

namespace umrflow::nodes {

namespace {

const std::vector<std::string> kSpatialKeys = {"image", "label"};

std::vector<torch::Tensor*> volumes(Packet& s, const std::vector<std::string>& keys) {
  std::vector<torch::Tensor*> out;
  for (const auto& k : keys)
    if (s.has(k)) {
      if (s.at(k).dim() != 4) throw std::runtime_error("'" + k + "' must be (C, X, Y, Z), got shape " + c10::str(s.at(k).sizes()));
      out.push_back(&s.at(k));
    }
  if (out.empty()) throw std::runtime_error("none of the keys is in the sample");
  for (auto* t : out)
    if (t->sizes().slice(1) != out.front()->sizes().slice(1))
      throw std::runtime_error("spatial shapes differ between keys: " + c10::str(out.front()->sizes()) + " and " + c10::str(t->sizes()));
  return out;
}

/// Whether `t` is the only reference to its memory (no other tensor, view or
/// packet sees it), so that an in-place change is invisible elsewhere.
bool sole_owner(const torch::Tensor& t) {
  return t.defined() && t.use_count() == 1 && t.storage().use_count() == 1 && !t.requires_grad() && t.is_contiguous();
}
bool owned(const torch::Tensor& t) { return sole_owner(t) && t.is_floating_point(); }

/// Flips a contiguous (C, X, Y, Z) tensor in place along the spatial axes
/// marked in `flip`: each pair of rows (x, y) and their mirror is swapped once,
/// reversed along Z when Z flips. Elements of `E` bytes, moved as they are.
template <class E>
void flip_rows_in_place(E* data, std::int64_t channels, std::int64_t nx, std::int64_t ny, std::int64_t nz, const bool flip[3]) {
  for (std::int64_t c = 0; c < channels; ++c) {
    E* base = data + c * nx * ny * nz;
    for (std::int64_t x = 0; x < nx; ++x)
      for (std::int64_t y = 0; y < ny; ++y) {
        const std::int64_t r = x * ny + y, m = (flip[0] ? nx - 1 - x : x) * ny + (flip[1] ? ny - 1 - y : y);
        if (m < r) continue;  // this pair was swapped from its mirror
        E *a = base + r * nz, *b = base + m * nz;
        if (m == r) {
          if (flip[2]) std::reverse(a, a + nz);
        } else if (flip[2]) {
          for (std::int64_t z = 0; z < nz; ++z) std::swap(a[z], b[nz - 1 - z]);
        } else {
          std::swap_ranges(a, a + nz, b);
        }
      }
  }
}

/// `t` flipped along `dims` (tensor axes 1-3): in place when nothing else holds it.
torch::Tensor flip_volume(torch::Tensor t, const std::vector<std::int64_t>& dims) {
  if (t.dim() != 4 || !sole_owner(t)) return t.flip(dims);
  bool flip[3] = {false, false, false};
  for (auto d : dims) flip[d - 1] = true;
  const auto c = t.size(0), x = t.size(1), y = t.size(2), z = t.size(3);
  switch (t.element_size()) {
    case 1: flip_rows_in_place(static_cast<std::uint8_t*>(t.data_ptr()), c, x, y, z, flip); break;
    case 2: flip_rows_in_place(static_cast<std::uint16_t*>(t.data_ptr()), c, x, y, z, flip); break;
    case 4: flip_rows_in_place(static_cast<std::uint32_t*>(t.data_ptr()), c, x, y, z, flip); break;
    case 8: flip_rows_in_place(static_cast<std::uint64_t*>(t.data_ptr()), c, x, y, z, flip); break;
    default: return t.flip(dims);
  }
  return t;
}

/// Crops (and zero-pads where the box leaves the volume) to [start, start+size) per spatial axis.
torch::Tensor crop_pad(const torch::Tensor& t, const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& size) {
  torch::Tensor out = torch::zeros({t.size(0), size[0], size[1], size[2]}, t.options());
  std::vector<std::int64_t> src0(3), dst0(3), len(3);
  for (int a = 0; a < 3; ++a) {
    src0[a] = std::max<std::int64_t>(0, start[a]);
    dst0[a] = src0[a] - start[a];
    len[a] = std::min(start[a] + size[a], t.size(a + 1)) - src0[a];
    if (len[a] <= 0) return out;
  }
  out.narrow(1, dst0[0], len[0]).narrow(2, dst0[1], len[1]).narrow(3, dst0[2], len[2])
      .copy_(t.narrow(1, src0[0], len[0]).narrow(2, src0[1], len[1]).narrow(3, src0[2], len[2]));
  return out;
}

/// The type, kind and input every `volume.*` node shares.
template <class T>
void volume_node(Declaration<T>& d, const char* type, const char* summary) {
  d.type(type, NodeKind::sample, summary);
  d.input({"in", {{"image", 4, "(C, X, Y, Z)"}}, "the sample"});
}

/// The last parameter of every spatial transform.
template <class T>
void keys_param(Declaration<T>& d, std::vector<std::string> T::*keys) {
  d.param(keys, param::texts("keys", kSpatialKeys, "keys moved together (absent keys are ignored)"));
}

/// Crop to the box of voxels > 0 in any channel of `source`, each side rounded
/// up to a multiple of k and grown symmetrically (MONAI CropForeground with
/// k_divisible); zero padding where the box leaves the volume.
class CropForeground final : public SampleNode {
 public:
  static void declare(Declaration<CropForeground>& d) {
    volume_node(d, "volume.crop_foreground",
                "Crops to the box of voxels > 0 in any channel, sides rounded up to multiples of k (grown symmetrically, zero-padded).");
    d.param(&CropForeground::k_,
            param::integers("k_divisible", std::vector<std::int64_t>{128, 128, 128}, "side multiples per spatial axis").length(3).min(1));
    d.param(&CropForeground::source_, param::text("source", "image", "key whose non-zero voxels define the foreground"));
    keys_param(d, &CropForeground::keys_);
  }

  void apply(Packet& s, Context&) override {
    auto vols = volumes(s, keys_);
    const torch::Tensor fg = (s.at(source_) > 0).any(0);
    std::vector<std::int64_t> start(3), size(3);
    if (!fg.any().item<bool>()) throw std::runtime_error("'" + source_ + "' has no voxel > 0: nothing to crop to (an empty scan?)");
    for (int a = 0; a < 3; ++a) {
      std::vector<std::int64_t> other;
      for (int b = 0; b < 3; ++b)
        if (b != a) other.push_back(b);
      const torch::Tensor line = torch::nonzero(fg.any(other[1]).any(other[0]));  // indices along axis a
      const std::int64_t lo = line.min().item<std::int64_t>(), hi = line.max().item<std::int64_t>() + 1;
      const std::int64_t len = hi - lo, k = k_[a];
      const std::int64_t rounded = (len + k - 1) / k * k;
      start[a] = lo - (rounded - len) / 2;
      size[a] = rounded;
    }
    for (auto* t : vols) *t = crop_pad(*t, start, size);
    s.samples.at(0).tags["foreground_start"] = start;
  }

 private:
  std::vector<std::int64_t> k_;
  std::vector<std::string> keys_;
  std::string source_;
};

/// A uniformly placed window of `size` (MONAI RandSpatialCrop, fixed size);
/// an axis shorter than the window is kept whole.
class RandomCrop final : public SampleNode {
 public:
  static void declare(Declaration<RandomCrop>& d) {
    volume_node(d, "volume.random_crop", "A uniformly placed window of fixed size (axes shorter than it are kept whole).");
    d.param(&RandomCrop::size_,
            param::integers("size", std::vector<std::int64_t>{128, 128, 128}, "window size per spatial axis").length(3).min(1));
    keys_param(d, &RandomCrop::keys_);
  }

  void apply(Packet& s, Context& ctx) override {
    auto vols = volumes(s, keys_);
    std::vector<std::int64_t> start(3), size(3);
    for (int a = 0; a < 3; ++a) {
      const std::int64_t extent = vols.front()->size(a + 1);
      size[a] = std::min(size_[a], extent);
      start[a] = std::uniform_int_distribution<std::int64_t>(0, extent - size[a])(ctx.engine());
    }
    for (auto* t : vols) *t = t->narrow(1, start[0], size[0]).narrow(2, start[1], size[1]).narrow(3, start[2], size[2]).contiguous();
    s.samples.at(0).tags["crop_start"] = start;
  }

 private:
  std::vector<std::int64_t> size_;
  std::vector<std::string> keys_;
};

/// Flips along each spatial axis independently with probability p (MONAI RandFlip per axis).
class RandomFlipVolume final : public SampleNode {
 public:
  static void declare(Declaration<RandomFlipVolume>& d) {
    volume_node(d, "volume.random_flip", "Flips along each listed spatial axis independently with probability p.");
    d.param(&RandomFlipVolume::axes_, param::integers("axes", std::vector<std::int64_t>{0, 1, 2}, "spatial axes (0 = X)").range(0, 2));
    d.param(&RandomFlipVolume::p_, param::number("p", 0.5, "probability per axis").range(0, 1));
    keys_param(d, &RandomFlipVolume::keys_);
  }

  void apply(Packet& s, Context& ctx) override {
    auto vols = volumes(s, keys_);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<std::int64_t> dims;
    for (auto a : axes_)
      if (u(ctx.engine()) < p_) dims.push_back(a + 1);
    if (!dims.empty())
      for (auto* t : vols) *t = flip_volume(std::move(*t), dims);
  }

 private:
  std::vector<std::int64_t> axes_;
  double p_ = 0;
  std::vector<std::string> keys_;
};

/// With probability `prob`, rotates by k*90 degrees in the plane of two
/// spatial axes, k uniform in 1..max_k (MONAI RandRotate90).
class RandomRot90 final : public SampleNode {
 public:
  static void declare(Declaration<RandomRot90>& d) {
    volume_node(d, "volume.random_rot90", "With probability prob, rotates by k*90 degrees (k uniform in 1..max_k) in one spatial plane.");
    d.param(&RandomRot90::prob_, param::number("prob", 0.1, "probability of rotating").range(0, 1));
    d.param(&RandomRot90::max_k_, param::integer("max_k", 3, "largest number of quarter turns").range(1, 3));
    d.param(&RandomRot90::plane_,
            param::integers("spatial_axes", std::vector<std::int64_t>{0, 1}, "the plane, as two spatial axes").length(2).range(0, 2));
    keys_param(d, &RandomRot90::keys_);
  }

  void apply(Packet& s, Context& ctx) override {
    auto vols = volumes(s, keys_);
    std::uniform_real_distribution<double> u(0, 1);
    if (u(ctx.engine()) >= prob_) return;
    const std::int64_t k = std::uniform_int_distribution<std::int64_t>(1, max_k_)(ctx.engine());
    for (auto* t : vols) *t = torch::rot90(*t, k, {plane_[0] + 1, plane_[1] + 1}).contiguous();
  }

 private:
  double prob_ = 0;
  std::int64_t max_k_ = 0;
  std::vector<std::int64_t> plane_;
  std::vector<std::string> keys_;
};

/// Per channel: mean and population std over the non-zero voxels; only those
/// become (v - mean) / std; zeros stay 0; std 0 counts as 1 (MONAI
/// NormalizeIntensity nonzero=True, channel_wise=True).
class ZScoreNonzero final : public SampleNode {
 public:
  static void declare(Declaration<ZScoreNonzero>& d) {
    volume_node(d, "volume.zscore_nonzero",
                "Per channel, z-scores the non-zero voxels of `image` (population std; zeros stay 0; std 0 counts as 1).");
  }

  // One pass gathers a channel's non-zero voxels as float64 (the statistics are
  // libtorch's mean and std over them, as masked_select would give), one pass
  // writes the result: the values equal the tensor-op formulation bit for bit.
  void apply(Packet& s, Context&) override {
    torch::Tensor& image = s.at("image");
    const bool in_place = image.scalar_type() == torch::kFloat32 && sole_owner(image);
    const torch::Tensor x = in_place ? image : image.to(torch::kFloat32).contiguous();
    torch::Tensor out = in_place ? x : torch::empty_like(x);
    const std::int64_t channels = x.dim() > 0 ? x.size(0) : 1, n = channels > 0 ? x.numel() / channels : 0;
    thread_local std::vector<double> values;  // kept between samples: no allocation per sample
    values.resize(static_cast<std::size_t>(n) + 1);
    for (std::int64_t c = 0; c < channels; ++c) {
      const float* src = x.data_ptr<float>() + c * n;
      float* dst = out.data_ptr<float>() + c * n;
      std::int64_t count = 0;
      for (std::int64_t i = 0; i < n; ++i) {  // without a branch: every value is written, non-zeros advance
        values[count] = src[i];
        count += src[i] != 0;
      }
      if (count == 0) {
        if (!in_place) std::copy(src, src + n, dst);
        continue;
      }
      const torch::Tensor v = torch::from_blob(values.data(), {count}, torch::kFloat64);
      const double mean = v.mean().item<double>();
      double std = v.std(/*unbiased=*/false).item<double>();
      if (std == 0) std = 1;
      for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i] != 0 ? static_cast<float>((static_cast<double>(src[i]) - mean) / std) : src[i];
    }
    image = out;
  }
};

/// The stage-1 reconstruction target: `image` min-max normalised per channel
/// and per axial slice (min and max over X and Y), denominators clamped to
/// 1e-5, written to `target` before any perturbation.
class SliceMinMaxTarget final : public SampleNode {
 public:
  static void declare(Declaration<SliceMinMaxTarget>& d) {
    volume_node(d, "volume.slice_minmax_target",
                "Writes `target`: `image` min-max normalised per channel and axial slice (the stage-1 reconstruction target).");
    d.output({"target", 4, "float32 (C, X, Y, Z) in [0, 1]"});
    d.param(&SliceMinMaxTarget::eps_, param::number("eps", 1e-5, "smallest denominator max - min").min(0));
  }

  void apply(Packet& s, Context&) override {
    const torch::Tensor x = s.at("image").to(torch::kFloat32);
    if (x.dim() != 4) throw std::runtime_error("expects `image` (C, X, Y, Z), got " + c10::str(x.sizes()));
    const torch::Tensor lo = std::get<0>(std::get<0>(x.min(1, true)).min(2, true));
    const torch::Tensor hi = std::get<0>(std::get<0>(x.max(1, true)).max(2, true));
    s.tensors["target"] = (x - lo) / (hi - lo).clamp_min(eps_);
  }

 private:
  double eps_ = 0;
};

/// v * (1 + f), one f ~ U(-factors, factors) for all channels, with probability prob.
class RandomScaleIntensity final : public SampleNode {
 public:
  static void declare(Declaration<RandomScaleIntensity>& d) {
    volume_node(d, "volume.random_scale_intensity", "Multiplies `image` by 1 + f, one f ~ U(-factors, factors) for all channels.");
    d.param(&RandomScaleIntensity::range_, param::number("factors", 0.1, "half-width of the range of f").min(0));
    d.param(&RandomScaleIntensity::prob_, param::number("prob", 1.0, "probability of scaling").range(0, 1));
  }

  void apply(Packet& s, Context& ctx) override {
    std::uniform_real_distribution<double> u(0, 1);
    if (u(ctx.engine()) >= prob_) return;
    const double f = std::uniform_real_distribution<double>(-range_, range_)(ctx.engine());
    torch::Tensor& x = s.at("image");
    x = owned(x) ? x.mul_(1.0 + f) : x * (1.0 + f);
  }

 private:
  double range_ = 0, prob_ = 0;
};

/// v + o for every voxel (background included), one o ~ U(-offsets, offsets), with probability prob.
class RandomShiftIntensity final : public SampleNode {
 public:
  static void declare(Declaration<RandomShiftIntensity>& d) {
    volume_node(d, "volume.random_shift_intensity", "Adds one o ~ U(-offsets, offsets) to every voxel of `image`, background included.");
    d.param(&RandomShiftIntensity::range_, param::number("offsets", 0.1, "half-width of the range of o").min(0));
    d.param(&RandomShiftIntensity::prob_, param::number("prob", 1.0, "probability of shifting").range(0, 1));
  }

  void apply(Packet& s, Context& ctx) override {
    std::uniform_real_distribution<double> u(0, 1);
    if (u(ctx.engine()) >= prob_) return;
    const double o = std::uniform_real_distribution<double>(-range_, range_)(ctx.engine());
    torch::Tensor& x = s.at("image");
    x = owned(x) ? x.add_(o) : x + o;
  }

 private:
  double range_ = 0, prob_ = 0;
};

}  // namespace

void register_volume_nodes(Registry& registry) {
  add_nodes<CropForeground, RandomCrop, RandomFlipVolume, RandomRot90, ZScoreNonzero, SliceMinMaxTarget, RandomScaleIntensity,
            RandomShiftIntensity>(registry);
}

}  // namespace umrflow::nodes
