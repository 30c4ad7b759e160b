#include <gtest/gtest.h>

#include <numeric>
#include <set>

#include "modality/modality.h"
#include "nodes/node_harness.h"

namespace umrflow {

using test::apply;
using test::make_node;
using test::sample;

namespace {
const std::vector<std::string> kMods = {"flair", "t1ce", "t1", "t2"};
}

// The code order is the released trainer's table: complete, then zeroed [0],
// [1], [2], [3], [0,1], [0,2], [0,3], [1,2], [1,3], [2,3], [0,1,2], ... [1,2,3].
TEST(Modality, CodeOrderMatchesTheReleasedTable) {
  const std::vector<std::vector<int>> zeroed = {{}, {0}, {1}, {2}, {3}, {0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3},
                                                {0, 1, 2}, {0, 1, 3}, {0, 2, 3}, {1, 2, 3}};
  auto masks = modality::subset_masks(kMods, "code");
  ASSERT_EQ(masks.size(), 15u);
  for (std::size_t s = 0; s < 15; ++s) {
    std::vector<std::int64_t> expected(4, 1);
    for (int z : zeroed[s]) expected[z] = 0;
    EXPECT_EQ(masks[s], expected) << s;
  }
  EXPECT_EQ(modality::subset_masks({"rgb", "depth"}, "code").size(), 3u);
}

// The paper order follows the tables by name, whatever the channel order.
TEST(Modality, PaperOrderFollowsNames) {
  auto masks = modality::subset_masks(kMods, "paper");
  ASSERT_EQ(masks.size(), 15u);
  const std::vector<std::string> rows = {"t2", "t1ce", "t1", "flair", "t1ce+t2", "t1ce+t1", "flair+t1", "t1+t2", "flair+t2",
                                         "flair+t1ce", "flair+t1ce+t1", "flair+t1+t2", "flair+t1ce+t2", "t1ce+t1+t2", "flair+t1ce+t1+t2"};
  for (std::size_t s = 0; s < 15; ++s) EXPECT_EQ(modality::subset_name(masks[s], kMods), rows[s]) << s;
  auto other = modality::subset_masks({"t1", "t1ce", "t2", "flair"}, "paper");
  EXPECT_EQ(other[1], (std::vector<std::int64_t>{0, 1, 0, 0}));
  EXPECT_EQ(std::set<std::vector<std::int64_t>>(masks.begin(), masks.end()).size(), 15u);
  EXPECT_THROW(modality::subset_masks({"rgb", "depth"}, "paper"), std::invalid_argument);
}

// Stage-1 dropout keeps all four with probability 0.5 + 0.5/4, a single channel
// with 0.5/4, never none; the zeroed channels are exactly those `present` marks.
TEST(Modality, Stage1DropoutProbabilities) {
  auto node = make_node("modality.dropout");
  torch::Tensor img = torch::rand({4, 2, 2, 2}) + 1;
  const int n = 6000;
  int all = 0, single = 0;
  for (int i = 0; i < n; ++i) {
    Packet out = apply(*node, sample({{"image", img}}), i);
    const auto present = out.samples[0].tags.at("present");
    int kept = 0;
    for (int c = 0; c < 4; ++c) {
      kept += present[c];
      EXPECT_EQ(torch::equal(out.at("image")[c], img[c]), present[c] == 1);
      if (!present[c]) EXPECT_EQ(out.at("image")[c].abs().sum().item<float>(), 0.f);
    }
    ASSERT_GE(kept, 1);
    all += kept == 4;
    single += kept == 1;
  }
  EXPECT_NEAR(all / double(n), 0.625, 0.025);
  EXPECT_NEAR(single / double(n), 0.125, 0.02);
}

// Stage-2 dropout always drops 1 to 3 channels, each count a third of the time.
TEST(Modality, Stage2DropoutCounts) {
  auto node = make_node("modality.dropout", "{sampler: stage2}");
  std::vector<int> missing(5, 0);
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    const auto p = apply(*node, sample({{"image", torch::ones({4, 1, 1, 1})}}), i).samples[0].tags.at("present");
    missing[4 - std::accumulate(p.begin(), p.end(), 0)]++;
  }
  EXPECT_EQ(missing[0], 0);
  EXPECT_EQ(missing[4], 0);
  for (int k = 1; k <= 3; ++k) EXPECT_NEAR(missing[k] / double(n), 1.0 / 3, 0.04);
}

// Shuffle packs the present channels first, in each of their orders about
// equally often, and zeros the rest; the permutation says which is where.
TEST(Modality, ShufflePacksPresentChannels) {
  auto node = make_node("modality.shuffle");
  torch::Tensor img = torch::arange(4, torch::kFloat32).view({4, 1, 1, 1}) + 1;
  std::map<std::vector<std::int64_t>, int> seen;
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    Packet s = sample({{"image", img * torch::tensor({1.f, 0.f, 1.f, 1.f}).view({4, 1, 1, 1})}});
    s.samples[0].tags["present"] = {1, 0, 1, 1};
    Packet out = apply(*node, s, i);
    const auto perm = out.samples[0].tags.at("permutation");
    EXPECT_EQ(perm[3], -1);
    for (int c = 0; c < 3; ++c) EXPECT_EQ(out.at("image")[c].item<float>(), img[perm[c]].item<float>());
    EXPECT_EQ(out.at("image")[3].item<float>(), 0.f);
    seen[perm]++;
  }
  ASSERT_EQ(seen.size(), 6u);
  for (const auto& [perm, count] : seen) EXPECT_NEAR(count / double(n), 1.0 / 6, 0.03);
  // The same seed and index give the same permutation.
  Packet a = sample({{"image", img}}), b = sample({{"image", img}});
  EXPECT_EQ(apply(*node, a, 7).samples[0].tags.at("permutation"), apply(*node, b, 7).samples[0].tags.at("permutation"));
  // Disabled (the Table-3 ablation): channels stay put, absent ones included, and the permutation is the identity.
  auto off = make_node("modality.shuffle", "{enabled: false}");
  Packet c = sample({{"image", img * torch::tensor({1.f, 0.f, 1.f, 1.f}).view({4, 1, 1, 1})}});
  c.samples[0].tags["present"] = {1, 0, 1, 1};
  const Packet kept = apply(*off, c, 3);
  EXPECT_TRUE(torch::equal(kept.at("image"), c.at("image")));
  EXPECT_EQ(kept.samples[0].tags.at("permutation"), (std::vector<std::int64_t>{0, 1, 2, 3}));
}

// Voxel masking zeroes about 15% of voxels, exactly where `mask` says; cube
// masking zeroes whole aligned cubes.
TEST(Modality, Masking) {
  torch::Tensor img = torch::ones({4, 32, 32, 32});
  Packet out = apply(*make_node("modality.mask"), sample({{"image", img}}));
  const double frac = (out.at("image") == 0).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(frac, 0.15, 0.005);
  EXPECT_TRUE(torch::equal(out.at("mask").to(torch::kBool), out.at("image") == 0));
  Packet cubes = apply(*make_node("modality.mask", "{mode: cube, cube: 8, ratio: 0.3}"), sample({{"image", img}}));
  auto blocks = (cubes.at("image") == 0).view({4, 4, 8, 4, 8, 4, 8}).to(torch::kFloat32).mean({2, 4, 6});
  EXPECT_TRUE(((blocks == 0) | (blocks == 1)).all().item<bool>());
  EXPECT_GT(blocks.sum().item<float>(), 0);
}

// Fill writes zeros, or copies of the first present channel, into absent ones.
TEST(Modality, Fill) {
  torch::Tensor img = torch::arange(3, torch::kFloat32).view({3, 1, 1, 1}) + 5;
  auto zeros = make_node("modality.fill", "{present: [0, 1, 1]}");
  auto out = apply(*zeros, sample({{"image", img}})).at("image");
  EXPECT_TRUE(torch::equal(out.view({3}), torch::tensor({0.f, 6.f, 7.f})));
  auto copy = make_node("modality.fill", "{mode: copy, present: [0, 1, 0]}");
  out = apply(*copy, sample({{"image", img}})).at("image");
  EXPECT_TRUE(torch::equal(out.view({3}), torch::tensor({6.f, 6.f, 6.f})));
  EXPECT_THROW(apply(*make_node("modality.fill", "{present: [0, 0, 0]}"), sample({{"image", img}})), std::runtime_error);
}

// The subset expansion holds every subset of the batch, subset-major, masked.
TEST(Modality, SubsetsExpandTheBatch) {
  auto node = make_node("modality.subsets");
  torch::Tensor x = torch::rand({2, 4, 3, 3, 3}) + 1;
  Packet in;
  in.tensors["image"] = x;
  Context ctx(1, 0, 0, "subsets", true);
  Packet out = dynamic_cast<StepNode&>(*node).run({in}, ctx);
  auto masks = modality::subset_masks(kMods, "code");
  ASSERT_EQ(out.at("image").size(0), 30);
  ASSERT_EQ(out.at("incomplete").size(0), 28);
  EXPECT_TRUE(torch::equal(out.at("complete"), x));
  for (std::int64_t s = 0; s < 15; ++s) {
    auto m = torch::tensor(masks[s], torch::kFloat32).view({1, 4, 1, 1, 1});
    EXPECT_TRUE(torch::equal(out.at("image").slice(0, 2 * s, 2 * s + 2), x * m)) << s;
    EXPECT_EQ(std::vector<std::int64_t>(out.at("present")[s].data_ptr<std::int64_t>(), out.at("present")[s].data_ptr<std::int64_t>() + 4), masks[s]);
  }
  EXPECT_TRUE(torch::equal(out.at("incomplete"), out.at("image").slice(0, 2)));
  // Released stage-3 grouping: complete alone, then pairs {1,2}, {3,4}, ..., {13,14}.
  EXPECT_TRUE(torch::equal(out.at("group"), torch::tensor({0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7})));
  auto paper = make_node("modality.subsets", "{order: paper, group_size: 7}");
  Packet p = dynamic_cast<StepNode&>(*paper).run({in}, ctx);
  EXPECT_TRUE(torch::equal(p.at("group"), torch::tensor({1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 0})));
}

// `from_tag` expands a batch into the one subset its samples' tag `present`
// names; samples that disagree, or carry no tag, are an error.
TEST(Modality, SubsetsFromTheBatchTag) {
  auto node = make_node("modality.subsets", "{from_tag: true}");
  torch::Tensor x = torch::rand({2, 4, 3, 3, 3}) + 1;
  Packet in;
  in.tensors["image"] = x;
  in.samples.resize(2);
  in.samples[0].tags["present"] = in.samples[1].tags["present"] = {1, 0, 0, 1};
  Context ctx(1, 0, 0, "subsets", true);
  Packet out = dynamic_cast<StepNode&>(*node).run({in}, ctx);
  EXPECT_TRUE(torch::equal(out.at("image"), x * torch::tensor({1.0f, 0.0f, 0.0f, 1.0f}).view({1, 4, 1, 1, 1})));
  EXPECT_TRUE(torch::equal(out.at("present"), torch::tensor({1, 0, 0, 1}).view({1, 4})));
  EXPECT_TRUE(torch::equal(out.at("incomplete"), out.at("image")));
  EXPECT_TRUE(torch::equal(out.at("group"), torch::tensor({1})));
  in.samples[1].tags["present"] = {1, 1, 1, 1};
  EXPECT_THROW(dynamic_cast<StepNode&>(*node).run({in}, ctx), std::runtime_error);
  in.samples[0].tags["present"] = in.samples[1].tags["present"];
  Packet complete = dynamic_cast<StepNode&>(*node).run({in}, ctx);
  EXPECT_EQ(complete.at("incomplete").size(0), 0);
  EXPECT_TRUE(torch::equal(complete.at("group"), torch::tensor({0})));
  in.samples[1].tags.clear();
  EXPECT_THROW(dynamic_cast<StepNode&>(*node).run({in}, ctx), std::runtime_error);
}

// Stage-2 views: row 0 of each pair is the sample itself, row 1 the same
// sample with 1..M-1 whole channels zeroed (each count seen over many draws,
// never 0 or M); labels are repeated; a batch of one uses A for B.
TEST(ModalityViews, PairsAndMissingCounts) {
  auto node = test::make_node("modality.views");
  torch::manual_seed(2);
  const torch::Tensor x = torch::rand({2, 4, 3, 3, 3}) + 0.5;
  const torch::Tensor y = torch::randint(0, 2, {2, 3, 3, 3, 3});
  std::map<std::int64_t, int> counts;
  bool resample_differs = false;
  for (int k = 0; k < 60; ++k) {
    Packet in;
    in.tensors = {{"image", x}, {"label", y}};
    Context ctx(9, 0, k, "views", true);
    Packet out = dynamic_cast<StepNode&>(*node).run({in}, ctx);
    EXPECT_TRUE(torch::equal(out.at("first")[0], x[0]));
    EXPECT_TRUE(torch::equal(out.at("second")[0], x[1]));
    EXPECT_TRUE(torch::equal(out.at("second_label")[1], y[1]));
    for (const char* key : {"first", "second", "second_resampled"}) {
      const torch::Tensor v = out.at(key);
      std::int64_t zeroed = 0;
      for (int c = 0; c < 4; ++c) {
        if (v[1][c].abs().sum().item<double>() == 0) ++zeroed;
        else EXPECT_TRUE(torch::equal(v[1][c], v[0][c]));
      }
      ++counts[zeroed];
    }
    resample_differs |= !torch::equal(out.at("second")[1], out.at("second_resampled")[1]);
  }
  EXPECT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts.count(0) + counts.count(4), 0u);
  EXPECT_TRUE(resample_differs);
  Packet one;
  one.tensors = {{"image", x.narrow(0, 0, 1)}, {"label", y.narrow(0, 0, 1)}};
  Context ctx(9, 0, 0, "views", true);
  Packet out = dynamic_cast<StepNode&>(*node).run({one}, ctx);
  EXPECT_TRUE(torch::equal(out.at("second")[0], x[0]));
}

// Copy-fill by the channel table [3, 1], element by element: an absent depth
// slot takes the mean of R, G, B; absent RGB slots each take the depth; a
// table that does not add up, or counts that cannot be copied, are errors.
TEST(ModalityTable, CopyFillFollowsTheChannelCounts) {
  torch::manual_seed(4);
  const torch::Tensor x = torch::rand({2, 4, 3, 5});
  const auto table = modality::channel_table({3, 1}, 4);
  EXPECT_EQ(table.modalities(), 2);
  EXPECT_EQ(modality::channel_mask({1, 0}, table), (std::vector<std::int64_t>{1, 1, 1, 0}));
  EXPECT_EQ(modality::modality_mask({0, 0, 0, 1}, table), (std::vector<std::int64_t>{0, 1}));
  EXPECT_THROW(modality::modality_mask({1, 0, 1, 1}, table), std::runtime_error);
  const torch::Tensor rgb_only = modality::fill_absent(x, {1, 0}, table, 1, true);
  const torch::Tensor depth_only = modality::fill_absent(x, {0, 1}, table, 1, true);
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 5; ++j) {
        const float r = x[b][0][i][j].item<float>(), g = x[b][1][i][j].item<float>(), bl = x[b][2][i][j].item<float>();
        const float d = x[b][3][i][j].item<float>();
        EXPECT_FLOAT_EQ(rgb_only[b][3][i][j].item<float>(), (r + g + bl) / 3);
        EXPECT_EQ(rgb_only[b][0][i][j].item<float>(), r);
        for (int c = 0; c < 4; ++c) EXPECT_EQ(depth_only[b][c][i][j].item<float>(), d);
      }
  EXPECT_TRUE(torch::equal(modality::fill_absent(x, {1, 1}, table, 1, true), x));
  EXPECT_TRUE(torch::equal(modality::fill_absent(x, {0, 1}, table, 1, false).narrow(1, 0, 3), torch::zeros({2, 3, 3, 5})));
  EXPECT_THROW(modality::channel_table({3, 2}, 4), std::runtime_error);
  EXPECT_THROW(modality::fill_absent(torch::rand({1, 5, 2, 2}), {0, 1}, modality::channel_table({3, 2}, 5), 1, true), std::runtime_error);
  EXPECT_THROW(modality::fill_absent(x, {0, 0}, table, 1, true), std::runtime_error);
}

// With channels [3, 1] the subsets are the three of Table 2, masks per
// modality, each image copy-filled; the complete subset is the batch itself.
TEST(ModalityTable, SubsetsOfTwoModalitiesAreCopyFilled) {
  auto node = make_node("modality.subsets", "{modalities: [RGB, Depth], channels: [3, 1], fill: copy}");
  torch::manual_seed(5);
  Packet in;
  in.tensors["image"] = torch::rand({2, 4, 4, 4});
  const torch::Tensor& x = in.tensors["image"];
  Context ctx(1, 0, 0, "subsets", true);
  Packet out = dynamic_cast<StepNode&>(*node).run({in}, ctx);
  EXPECT_TRUE(torch::equal(out.at("present"), torch::tensor({1, 1, 0, 1, 1, 0}).view({3, 2})));
  const torch::Tensor img = out.at("image");
  ASSERT_EQ(img.size(0), 6);
  EXPECT_TRUE(torch::equal(img.narrow(0, 0, 2), x));
  // Subset 1 zeroes modality 0 (RGB): every channel is the depth.
  EXPECT_TRUE(torch::equal(img.narrow(0, 2, 2), x.narrow(1, 3, 1).expand({2, 4, 4, 4})));
  // Subset 2 zeroes the depth: RGB kept, depth = mean of RGB.
  EXPECT_TRUE(torch::equal(img.narrow(0, 4, 2).narrow(1, 0, 3), x.narrow(1, 0, 3)));
  EXPECT_TRUE(torch::allclose(img.narrow(0, 4, 2).narrow(1, 3, 1), x.narrow(1, 0, 3).mean(1, true)));
  EXPECT_TRUE(torch::equal(out.at("group"), torch::tensor({0, 1, 1})));
  in.tensors["image"] = torch::rand({2, 3, 4, 4});
  EXPECT_THROW(dynamic_cast<StepNode&>(*node).run({in}, ctx), std::runtime_error);
}

// Dropout, fill and views draw whole modalities under a table: RGB's three
// channels are kept or dropped together, and a copy-filled view is never zero.
TEST(ModalityTable, DropoutAndViewsDrawWholeModalities) {
  auto drop = make_node("modality.dropout", "{channels: [3, 1], sampler: stage2}");
  auto fill = make_node("modality.fill", "{channels: [3, 1], mode: copy}");
  const torch::Tensor img = torch::rand({4, 3, 3}) + 1;
  std::set<std::vector<std::int64_t>> seen;
  for (int i = 0; i < 40; ++i) {
    Packet out = apply(*fill, apply(*drop, sample({{"image", img}}), i));
    const auto present = out.samples[0].tags.at("present");
    seen.insert(present);
    EXPECT_GT(out.at("image").abs().amin().item<float>(), 0.f);
  }
  EXPECT_EQ(seen, (std::set<std::vector<std::int64_t>>{{1, 1, 1, 0}, {0, 0, 0, 1}}));
  auto views = make_node("modality.views", "{channels: [3, 1], fill: copy}");
  Packet in;
  in.tensors = {{"image", torch::rand({2, 4, 3, 3}) + 1}, {"label", torch::ones({2, 1, 3, 3})}};
  std::set<bool> kinds;
  for (int k = 0; k < 20; ++k) {
    Context ctx(3, 0, k, "views", true);
    Packet out = dynamic_cast<StepNode&>(*views).run({in}, ctx);
    const torch::Tensor v = out.at("first")[1], a = in.tensors["image"][0];
    const bool rgb_kept = torch::equal(v.narrow(0, 0, 3), a.narrow(0, 0, 3));
    kinds.insert(rgb_kept);
    if (rgb_kept) EXPECT_TRUE(torch::allclose(v[3], a.narrow(0, 0, 3).mean(0)));
    else for (int c = 0; c < 4; ++c) EXPECT_TRUE(torch::equal(v[c], a[3]));
  }
  EXPECT_EQ(kinds.size(), 2u);  // both the RGB-kept and the depth-kept view were drawn
}

// split: halves pairs the batch's two halves: A = rows 0..k-1, B = rows
// k..2k-1, each view complete rows first, then those rows with 1..M-1
// channels zeroed (each row drawn on its own); labels follow; an odd batch is refused.
TEST(ModalityViews, HalvesUseTheWholeBatch) {
  auto node = test::make_node("modality.views", "{split: halves}");
  torch::manual_seed(6);
  const torch::Tensor x = torch::rand({4, 4, 2, 2, 2}) + 0.5;
  const torch::Tensor y = torch::randint(0, 2, {4, 3, 2, 2, 2});
  Packet in;
  in.tensors = {{"image", x}, {"label", y}};
  bool rows_differ = false;
  for (int k = 0; k < 20; ++k) {
    Context ctx(9, 0, k, "views", true);
    Packet out = dynamic_cast<StepNode&>(*node).run({in}, ctx);
    ASSERT_EQ(out.at("first").size(0), 4);
    EXPECT_TRUE(torch::equal(out.at("first").narrow(0, 0, 2), x.narrow(0, 0, 2)));
    EXPECT_TRUE(torch::equal(out.at("second").narrow(0, 0, 2), x.narrow(0, 2, 2)));
    EXPECT_TRUE(torch::equal(out.at("second_label"), torch::cat({y.narrow(0, 2, 2), y.narrow(0, 2, 2)})));
    std::vector<std::int64_t> zeroed_per_row;
    for (int r = 0; r < 2; ++r) {
      std::int64_t zeroed = 0;
      for (int c = 0; c < 4; ++c) {
        const torch::Tensor v = out.at("first")[2 + r][c];
        if (v.abs().sum().item<double>() == 0) ++zeroed;
        else EXPECT_TRUE(torch::equal(v, x[r][c]));
      }
      EXPECT_GE(zeroed, 1);
      EXPECT_LE(zeroed, 3);
      zeroed_per_row.push_back(zeroed);
    }
    rows_differ |= zeroed_per_row[0] != zeroed_per_row[1];
  }
  EXPECT_TRUE(rows_differ);
  in.tensors["image"] = x.narrow(0, 0, 3);
  in.tensors["label"] = y.narrow(0, 0, 3);
  Context ctx(9, 0, 0, "views", true);
  EXPECT_THROW(dynamic_cast<StepNode&>(*node).run({in}, ctx), std::runtime_error);
}

}  // namespace umrflow
