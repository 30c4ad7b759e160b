// Modality perturbations on the data plane (dropout, shuffle, masking, fill)
// and the subset enumerator on the step plane. Each records what it did in the
// sample's tags: `present` (1 per channel whose modality is kept) and
// `permutation` (source channel of each output channel, -1 for an empty one).
// A modality may own several channels (`channels: [3, 1]` for RGB with depth);
// dropout, fill, subsets and views then draw and fill whole modalities.
#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "builtin.h"
#include "modality/modality.h"
#include "umrflow/declare.h"
#include "umrflow/node.h"

namespace umrflow::modality {

std::vector<std::vector<std::int64_t>> subset_masks(const std::vector<std::string>& modalities, const std::string& order) {
  const auto m = static_cast<std::int64_t>(modalities.size());
  std::vector<std::vector<std::int64_t>> out;
  if (order == "code") {
    for (std::int64_t zeroed = 0; zeroed < m; ++zeroed) {
      // All index sets of size `zeroed`, lexicographic.
      std::vector<bool> pick(m, false);
      std::fill(pick.begin(), pick.begin() + zeroed, true);
      do {
        std::vector<std::int64_t> mask(m, 1);
        for (std::int64_t i = 0; i < m; ++i)
          if (pick[i]) mask[i] = 0;
        out.push_back(mask);
      } while (std::prev_permutation(pick.begin(), pick.end()));
    }
    return out;
  }
  if (order != "paper") throw std::invalid_argument("subset order is 'code' or 'paper', not '" + order + "'");
  static const std::vector<std::vector<std::string>> rows = {
      {"t2"}, {"t1ce"}, {"t1"}, {"flair"}, {"t1ce", "t2"}, {"t1ce", "t1"}, {"flair", "t1"}, {"t1", "t2"},
      {"flair", "t2"}, {"flair", "t1ce"}, {"flair", "t1ce", "t1"}, {"flair", "t1", "t2"}, {"flair", "t1ce", "t2"},
      {"t1ce", "t1", "t2"}, {"flair", "t1ce", "t1", "t2"}};
  std::vector<std::string> sorted = modalities;
  std::sort(sorted.begin(), sorted.end());
  if (sorted != std::vector<std::string>{"flair", "t1", "t1ce", "t2"})
    throw std::invalid_argument("the paper's subset order is defined for modalities flair, t1ce, t1, t2; use order 'code'");
  for (const auto& row : rows) {
    std::vector<std::int64_t> mask(m, 0);
    for (const auto& name : row) mask[std::find(modalities.begin(), modalities.end(), name) - modalities.begin()] = 1;
    out.push_back(mask);
  }
  return out;
}

std::string subset_name(const std::vector<std::int64_t>& mask, const std::vector<std::string>& modalities) {
  std::string out;
  for (std::size_t i = 0; i < mask.size(); ++i)
    if (mask[i]) out += (out.empty() ? "" : "+") + modalities[i];
  return out;
}

ChannelTable channel_table(const std::vector<std::int64_t>& counts, std::int64_t total) {
  ChannelTable t;
  if (counts.empty()) {
    for (std::int64_t c = 0; c < total; ++c) {
      t.first.push_back(c);
      t.count.push_back(1);
    }
    return t;
  }
  std::int64_t at = 0;
  for (std::int64_t n : counts) {
    t.first.push_back(at);
    t.count.push_back(n);
    at += n;
  }
  if (at != total)
    throw std::runtime_error("parameter channels: the modalities' channel counts sum to " + std::to_string(at) + ", the image has " +
                             std::to_string(total) + " channels");
  return t;
}

std::vector<std::int64_t> channel_mask(const std::vector<std::int64_t>& mask, const ChannelTable& table) {
  std::vector<std::int64_t> out;
  for (std::size_t k = 0; k < mask.size(); ++k) out.insert(out.end(), table.count.at(k), mask[k]);
  return out;
}

std::vector<std::int64_t> modality_mask(const std::vector<std::int64_t>& channels, const ChannelTable& table) {
  std::vector<std::int64_t> out;
  for (std::int64_t k = 0; k < table.modalities(); ++k) {
    const std::int64_t v = channels.at(table.first[k]);
    for (std::int64_t c = 0; c < table.count[k]; ++c)
      if (channels.at(table.first[k] + c) != v)
        throw std::runtime_error("modality " + std::to_string(k) + " is present in some of its channels and absent in others");
    out.push_back(v);
  }
  return out;
}

torch::Tensor fill_absent(const torch::Tensor& x, const std::vector<std::int64_t>& mask, const ChannelTable& table, std::int64_t axis,
                          bool copy) {
  const auto source = std::find(mask.begin(), mask.end(), 1) - mask.begin();
  if (source == static_cast<std::int64_t>(mask.size())) throw std::runtime_error("no modality is present");
  if (!copy) {
    std::vector<std::int64_t> shape(x.dim(), 1);
    shape[axis] = x.size(axis);
    return x * torch::tensor(channel_mask(mask, table), x.options().dtype(torch::kFloat32)).view(shape).to(x.dtype());
  }
  const torch::Tensor from = x.narrow(axis, table.first[source], table.count[source]);
  std::vector<torch::Tensor> parts;
  for (std::int64_t k = 0; k < table.modalities(); ++k) {
    const std::int64_t n = table.count[k];
    if (mask[k]) {
      parts.push_back(x.narrow(axis, table.first[k], n));
    } else if (n == from.size(axis)) {
      parts.push_back(from);
    } else if (from.size(axis) == 1) {
      std::vector<std::int64_t> reps(x.dim(), 1);
      reps[axis] = n;
      parts.push_back(from.repeat(reps));
    } else if (n == 1) {
      parts.push_back(x.is_floating_point() ? from.mean(axis, true) : from.to(torch::kFloat64).mean(axis, true).round().to(x.dtype()));
    } else {
      throw std::runtime_error("copy fill: modality " + std::to_string(k) + " has " + std::to_string(n) + " channels, the present one " +
                               std::to_string(from.size(axis)) + "; copying needs equal counts or one channel on either side");
    }
  }
  return torch::cat(parts, axis);
}

}  // namespace umrflow::modality

namespace umrflow::nodes {

namespace {

std::vector<std::int64_t> present_of(const Packet& s, std::int64_t channels) {
  const auto& tags = s.samples.at(0).tags;
  auto it = tags.find("present");
  if (it == tags.end()) return std::vector<std::int64_t>(channels, 1);
  if (static_cast<std::int64_t>(it->second.size()) != channels)
    throw std::runtime_error("tag `present` has " + std::to_string(it->second.size()) + " entries for " + std::to_string(channels) + " channels");
  return it->second;
}

/// The type and the one input port every modality sample node shares.
template <class T>
void modality_sample(Declaration<T>& d, const std::string& type, const std::string& summary) {
  d.type(type, NodeKind::sample, summary);
  d.input(PortSpec{"in", {{"image", -1, "(channels, ...): (M, X, Y, Z) for MRI, (4, H, W) for RGB-D"}}, "the sample"});
}

const char* const kChannels = "channels of each modality, in order; empty: one channel each (MRI); [3, 1] for RGB with depth or thermal";
const char* const kFill = "absent modalities: zeros (MRI, released) or copy, the present modality copied into the empty slot (2D tasks)";

/// The shape that broadcasts a per-channel vector over a sample or batch of `x` along `axis`.
std::vector<std::int64_t> channel_shape(const torch::Tensor& x, std::int64_t axis) {
  std::vector<std::int64_t> shape(x.dim(), 1);
  shape[axis] = x.size(axis);
  return shape;
}

/// Zeroes dropped channels. stage1 (released ModalityAugmentor): with
/// probability p keep a uniformly sized (1..M) random subset, else keep all.
/// stage2 (released create_random_missing_modalities): always drop 1..M-1.
class ModalityDropout final : public SampleNode {
 public:
  static void declare(Declaration<ModalityDropout>& d) {
    modality_sample(d, "modality.dropout", "Zeroes a random set of modality channels (keeps at least one); records tag `present`.");
    d.param(&ModalityDropout::p_, param::number("p", 0.5, "stage1 sampler: probability of dropping anything").range(0, 1));
    d.param(&ModalityDropout::sampler_,
            param::choice("sampler", "stage1", {"stage1", "stage2"},
                          "stage1: with prob p keep 1..M random modalities; stage2: always drop 1..M-1 (released code)"));
    d.param(&ModalityDropout::channels_, param::integers("channels", std::vector<std::int64_t>{}, kChannels).min(1));
  }

  void setup() { stage2_ = sampler_ == "stage2"; }

  void apply(Packet& s, Context& ctx) override {
    torch::Tensor& x = s.at("image");
    const modality::ChannelTable table = modality::channel_table(channels_, x.size(0));
    const std::int64_t m = table.modalities();
    auto& rng = ctx.engine();
    std::vector<std::int64_t> order(m);
    std::iota(order.begin(), order.end(), 0);
    std::vector<std::int64_t> present(m, 1);
    if (stage2_) {
      if (m < 2) throw std::runtime_error("stage2 dropout needs at least 2 modalities");
      const auto missing = std::uniform_int_distribution<std::int64_t>(1, m - 1)(rng);
      std::shuffle(order.begin(), order.end(), rng);
      for (std::int64_t i = 0; i < missing; ++i) present[order[i]] = 0;
    } else if (std::uniform_real_distribution<double>(0, 1)(rng) < p_) {
      const auto keep = std::uniform_int_distribution<std::int64_t>(1, m)(rng);
      std::shuffle(order.begin(), order.end(), rng);
      std::fill(present.begin(), present.end(), 0);
      for (std::int64_t i = 0; i < keep; ++i) present[order[i]] = 1;
    }
    const std::vector<std::int64_t> per_channel = modality::channel_mask(present, table);
    x = x * torch::tensor(per_channel, x.options().dtype(torch::kFloat32)).view(channel_shape(x, 0)).to(x.dtype());
    s.samples.at(0).tags["present"] = per_channel;
  }

 private:
  double p_ = 0;
  std::string sampler_;
  std::vector<std::int64_t> channels_;
  bool stage2_ = false;
};

/// Packs the present channels into the first channels in random order (always
/// a fresh permutation); the rest are zero. Records `permutation`.
class ModalityShuffle final : public SampleNode {
 public:
  static void declare(Declaration<ModalityShuffle>& d) {
    modality_sample(d, "modality.shuffle", "Packs the present channels first in random order, zeros after; records tag `permutation`.");
    d.param(&ModalityShuffle::enabled_,
            param::boolean("enabled", true, "false: channels stay where they are (the ablation without the shuffle)"));
  }

  void apply(Packet& s, Context& ctx) override {
    torch::Tensor& x = s.at("image");
    const std::int64_t m = x.size(0);
    if (!enabled_) {
      std::vector<std::int64_t> identity(m);
      std::iota(identity.begin(), identity.end(), 0);
      s.samples.at(0).tags["permutation"] = identity;
      return;
    }
    const auto present = present_of(s, m);
    std::vector<std::int64_t> kept;
    for (std::int64_t i = 0; i < m; ++i)
      if (present[i]) kept.push_back(i);
    std::shuffle(kept.begin(), kept.end(), ctx.engine());
    torch::Tensor out = torch::zeros_like(x);
    std::vector<std::int64_t> perm(m, -1);
    for (std::size_t i = 0; i < kept.size(); ++i) {
      out[static_cast<std::int64_t>(i)].copy_(x[kept[i]]);
      perm[i] = kept[i];
    }
    x = out;
    s.samples.at(0).tags["permutation"] = perm;
  }

 private:
  bool enabled_ = false;
};

/// Zeroes voxels i.i.d. with probability `ratio` in every channel (released),
/// or whole cubes of side `cube` on a grid, each with probability `ratio`.
class ModalityMask final : public SampleNode {
 public:
  static void declare(Declaration<ModalityMask>& d) {
    modality_sample(d, "modality.mask", "Zeroes voxels i.i.d. (released) or grid cubes with probability `ratio`; writes `mask`.");
    d.output({"mask", -1, "uint8, 1 where the input was zeroed"});
    d.param(&ModalityMask::ratio_, param::number("ratio", 0.15, "probability that a voxel (or cube) is masked").range(0, 1));
    d.param(&ModalityMask::mode_, param::choice("mode", "voxel", {"voxel", "cube"}, "i.i.d. voxels per channel, or cubes"));
    d.param(&ModalityMask::side_, param::integer("cube", 8, "cube side in voxels (mode cube)").min(1));
  }

  void setup() { cube_ = mode_ == "cube"; }

  void apply(Packet& s, Context& ctx) override {
    torch::Tensor& x = s.at("image");
    torch::Tensor keep;
    if (!cube_) {
      keep = torch::rand(x.sizes(), ctx.generator()) >= ratio_;
    } else {
      std::vector<std::int64_t> coarse = {x.size(0)};
      for (std::int64_t a = 1; a < x.dim(); ++a) coarse.push_back((x.size(a) + side_ - 1) / side_);
      keep = torch::rand(coarse, ctx.generator()) >= ratio_;
      for (std::int64_t a = 1; a < x.dim(); ++a) keep = keep.repeat_interleave(side_, a).narrow(a, 0, x.size(a));
    }
    x = x * keep.to(x.dtype());
    s.tensors["mask"] = (~keep).to(torch::kUInt8);
  }

 private:
  double ratio_ = 0;
  std::string mode_;
  bool cube_ = false;
  std::int64_t side_ = 0;
};

/// Fills the channels of absent modalities: with zeros (MRI) or from the
/// present one (two-modality tasks, modality::fill_absent). Absent = tag
/// `present`, or the fixed `present` parameter (one entry per modality) when given.
class ModalityFill final : public SampleNode {
 public:
  static void declare(Declaration<ModalityFill>& d) {
    modality_sample(d, "modality.fill", "Fills absent modality channels with zeros or a copy of the first present modality.");
    d.param(&ModalityFill::mode_, param::choice("mode", "zeros", {"zeros", "copy"}, "zeros for MRI; copy for two-modality tasks"));
    d.param(&ModalityFill::fixed_,
            param::integers("present", std::vector<std::int64_t>{}, "fixed mask, one entry per modality (1 = present); empty: use tag `present`")
                .range(0, 1));
    d.param(&ModalityFill::channels_, param::integers("channels", std::vector<std::int64_t>{}, kChannels).min(1));
  }

  void setup() { copy_ = mode_ == "copy"; }

  void apply(Packet& s, Context&) override {
    torch::Tensor& x = s.at("image");
    const modality::ChannelTable table = modality::channel_table(channels_, x.size(0));
    if (!fixed_.empty() && static_cast<std::int64_t>(fixed_.size()) != table.modalities())
      throw std::runtime_error("`present` lists " + std::to_string(fixed_.size()) + " entries for " + std::to_string(table.modalities()) +
                               " modalities");
    const auto present = fixed_.empty() ? modality::modality_mask(present_of(s, x.size(0)), table) : fixed_;
    if (copy_) {
      x = modality::fill_absent(x, present, table, 0, true);
    } else {
      if (std::find(present.begin(), present.end(), 1) == present.end()) throw std::runtime_error("no modality is present");
      x = x.clone();
      for (std::int64_t k = 0; k < table.modalities(); ++k)
        if (!present[k]) x.narrow(0, table.first[k], table.count[k]).zero_();
    }
    s.samples.at(0).tags["present"] = modality::channel_mask(present, table);
  }

 private:
  std::string mode_;
  bool copy_ = false;
  std::vector<std::int64_t> fixed_, channels_;
};

/// Step plane: expands a batch (B, M, ...) into its subsets. `image` holds all
/// S subsets subset-major (B rows of subset 0, then of subset 1, ...);
/// `complete` the batch itself; `incomplete` every subset but the complete one;
/// `present` the (S, M) masks in the chosen order, one column per modality
/// (M = the channels with the default table).
class ModalitySubsets final : public StepNode {
 public:
  static void declare(Declaration<ModalitySubsets>& d) {
    d.type("modality.subsets", NodeKind::step,
           "Expands a batch into all 2^M - 1 modality subsets (absent channels zeroed), in the code's or the paper's order.");
    d.sharding(Sharding::per_batch);
    d.input(PortSpec{"x", {{"image", -1, "(B, M, ...)"}}, "the batch"});
    d.output({"image", -1, "(S*B, M, ...) every subset, subset-major"});
    d.output({"complete", -1, "(B, M, ...)"});
    d.output({"incomplete", -1, "((S-1)*B, M, ...) every subset but the complete one"});
    d.output({"present", 2, "int64 (S, M) masks"});
    d.output({"group", 1, "int64 (S): 0 for the complete set, then 1, 1, 2, 2, ... for runs of group_size"});
    d.param(&ModalitySubsets::modalities_,
            param::texts("modalities", std::vector<std::string>{"flair", "t1ce", "t1", "t2"}, "names of the modalities, in order"));
    d.param(&ModalitySubsets::channels_, param::integers("channels", std::vector<std::int64_t>{}, kChannels).min(1));
    d.param(&ModalitySubsets::fill_, param::choice("fill", "zeros", {"zeros", "copy"}, kFill));
    d.param(&ModalitySubsets::order_,
            param::choice("order", "code", {"code", "paper"}, "code: complete first, then by zeroed sets; paper: the tables' row order"));
    d.param(&ModalitySubsets::group_size_,
            param::integer("group_size", 2, "incomplete subsets per group in `group` (the released stage 3 uses pairs)").min(1));
    d.param(&ModalitySubsets::from_tag_,
            param::boolean("from_tag", false,
                           "one subset only: the batch's tag `present` (every sample's must agree), for prediction on the "
                           "modalities each case has"));
  }

  void setup() {
    masks_ = modality::subset_masks(modalities_, order_);
    if (!channels_.empty() && channels_.size() != modalities_.size())
      throw std::invalid_argument("channels lists " + std::to_string(channels_.size()) + " counts for " + std::to_string(modalities_.size()) +
                                  " modalities");
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    const torch::Tensor& x = in.at(0).at("image");
    const std::int64_t expected = channels_.empty() ? static_cast<std::int64_t>(modalities_.size())
                                                    : std::accumulate(channels_.begin(), channels_.end(), std::int64_t{0});
    if (x.dim() < 2 || x.size(1) != expected)
      throw std::runtime_error("`image` has shape " + c10::str(x.sizes()) + "; expected " + std::to_string(expected) +
                               " channels on axis 1 for the modalities " + join(modalities_));
    const modality::ChannelTable table = modality::channel_table(channels_, x.size(1));
    const std::int64_t m = table.modalities();
    const std::vector<std::vector<std::int64_t>> masks =
        from_tag_ ? std::vector<std::vector<std::int64_t>>{modality::modality_mask(tag_mask(in.at(0), x.size(1)), table)} : masks_;
    std::vector<torch::Tensor> all, incomplete;
    std::vector<std::int64_t> flat;
    for (const auto& mask : masks) {
      torch::Tensor v = modality::fill_absent(x, mask, table, 1, fill_ == "copy");
      all.push_back(v);
      if (std::count(mask.begin(), mask.end(), 1) != static_cast<std::int64_t>(mask.size())) incomplete.push_back(v);
      flat.insert(flat.end(), mask.begin(), mask.end());
    }
    Packet out;
    out.tensors["image"] = torch::cat(all);
    out.tensors["complete"] = x;
    out.tensors["incomplete"] = incomplete.empty() ? x.narrow(0, 0, 0) : torch::cat(incomplete);
    out.tensors["present"] = torch::tensor(flat).view({static_cast<std::int64_t>(masks.size()), m});
    // Groups as the released stage-3 trainer forms them: the complete set alone
    // (group 0), then the incomplete subsets in runs of group_size, in order.
    std::vector<std::int64_t> group;
    std::int64_t incomplete_seen = 0;
    for (const auto& mask : masks) {
      const bool complete = std::count(mask.begin(), mask.end(), 1) == static_cast<std::int64_t>(mask.size());
      group.push_back(complete ? 0 : 1 + incomplete_seen++ / group_size_);
    }
    out.tensors["group"] = torch::tensor(group);
    return out;
  }

 private:
  static std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  }

  std::vector<std::string> modalities_;
  std::vector<std::int64_t> channels_;
  std::string order_, fill_;
  std::int64_t group_size_ = 0;
  bool from_tag_ = false;
  std::vector<std::vector<std::int64_t>> masks_;

  static std::vector<std::int64_t> tag_mask(const Packet& batch, std::int64_t channels) {
    if (batch.samples.empty()) throw std::runtime_error("from_tag: the batch carries no samples' tags");
    const auto mask = present_of(batch, channels);
    for (const auto& s : batch.samples) {
      auto it = s.tags.find("present");
      if (it == s.tags.end())
        throw std::runtime_error("from_tag: sample " + s.id + " carries no tag `present` (brats.scans and modality.fill set it)");
      if (it->second != mask)
        throw std::runtime_error("from_tag: samples " + batch.sample_names() + " have different modalities present (use batch size 1)");
    }
    if (std::count(mask.begin(), mask.end(), 0) == channels) throw std::runtime_error("from_tag: no modality is present");
    return mask;
  }
};

/// Step plane, stage 2 (released): from samples A = x[0] and B = x[1] (B = A
/// for a batch of one) builds `first` = (A, A'), `second` = (B, B') and
/// `second_resampled` = (B, B''), where each primed view zeroes 1..M-1 random
/// channels drawn afresh; the labels follow as `first_label`, `second_label`.
/// `split: halves` takes A = the first half of the batch and B = the second
/// (each view then has 2 * B/2 rows, complete rows first, one draw per row),
/// so that a larger batch is used whole; for a batch of two it is the released split.
class ModalityViews final : public StepNode {
 public:
  static void declare(Declaration<ModalityViews>& d) {
    d.type("modality.views", NodeKind::step,
           "Stage-2 views of the first two samples: complete and missing-modality pairs (A, A'), (B, B'), (B, B'').");
    d.sharding(Sharding::per_batch);
    d.input(PortSpec{"x", {{"image", -1, "(B, M, ...)"}, {"label", -1, "(B, R, ...)"}}, "the batch"});
    d.output({"first", -1, "(2k, C, ...) A, then A with 1..M-1 modalities absent (k = 1, or B/2 with split: halves)"});
    d.output({"second", -1, "(2k, C, ...) B and B'"});
    d.output({"second_resampled", -1, "(2k, C, ...) B and a fresh B''"});
    d.output({"first_label", -1, "(2k, R, ...) A's label twice"});
    d.output({"second_label", -1, "(2k, R, ...) B's label twice"});
    d.param(&ModalityViews::channels_, param::integers("channels", std::vector<std::int64_t>{}, kChannels).min(1));
    d.param(&ModalityViews::fill_, param::choice("fill", "zeros", {"zeros", "copy"}, kFill));
    d.param(&ModalityViews::split_,
            param::choice("split", "first_two", {"first_two", "halves"},
                          "first_two: A and B are the batch's first two samples (released); halves: its two halves (an even batch)"));
  }

  Packet run(const std::vector<Packet>& in, Context& ctx) override {
    const torch::Tensor& x = in.at(0).at("image");
    const torch::Tensor& y = in.at(0).at("label");
    if (x.dim() < 3 || x.size(1) < 2) throw std::runtime_error("`image` " + c10::str(x.sizes()) + " needs (B, M >= 2, ...)");
    const modality::ChannelTable table = modality::channel_table(channels_, x.size(1));
    const std::int64_t m = table.modalities();
    if (m < 2) throw std::runtime_error("modality.views needs at least 2 modalities; `channels` makes one");
    std::int64_t rows = 1;
    if (split_ == "halves" && x.size(0) > 1) {
      if (x.size(0) % 2) throw std::runtime_error("split: halves needs an even batch, got " + std::to_string(x.size(0)) + " samples (batch drop_last)");
      rows = x.size(0) / 2;
    }
    const torch::Tensor a = x.narrow(0, 0, rows), b = x.narrow(0, x.size(0) > 1 ? rows : 0, rows);
    auto missing = [&](const torch::Tensor& v) {
      std::vector<torch::Tensor> out;
      for (std::int64_t r = 0; r < v.size(0); ++r) out.push_back(missing_one(v.narrow(0, r, 1), table, ctx));
      return torch::cat(out);
    };
    Packet out;
    out.tensors["first"] = torch::cat({a, missing(a)});
    out.tensors["second"] = torch::cat({b, missing(b)});
    out.tensors["second_resampled"] = torch::cat({b, missing(b)});
    const torch::Tensor ya = y.narrow(0, 0, rows), yb = y.narrow(0, y.size(0) > 1 ? rows : 0, rows);
    out.tensors["first_label"] = torch::cat({ya, ya});
    out.tensors["second_label"] = torch::cat({yb, yb});
    return out;
  }

 private:
  /// One sample (1, C, ...) with 1..M-1 random modalities absent.
  torch::Tensor missing_one(const torch::Tensor& v, const modality::ChannelTable& table, Context& ctx) const {
    const std::int64_t m = table.modalities();
    std::vector<std::int64_t> order(m);
    std::iota(order.begin(), order.end(), 0);
    const std::int64_t n = std::uniform_int_distribution<std::int64_t>(1, m - 1)(ctx.engine());
    std::shuffle(order.begin(), order.end(), ctx.engine());
    if (fill_ == "copy") {
      std::vector<std::int64_t> present(m, 1);
      for (std::int64_t k = 0; k < n; ++k) present[order[k]] = 0;
      return modality::fill_absent(v, present, table, 1, true);
    }
    torch::Tensor out = v.clone();
    for (std::int64_t k = 0; k < n; ++k) out.narrow(1, table.first[order[k]], table.count[order[k]]).zero_();
    return out;
  }

  std::vector<std::int64_t> channels_;
  std::string fill_, split_;
};

}  // namespace

void register_modality_nodes(Registry& registry) {
  add_nodes<ModalityDropout, ModalityShuffle, ModalityMask, ModalityFill, ModalitySubsets, ModalityViews>(registry);
}

}  // namespace umrflow::nodes
