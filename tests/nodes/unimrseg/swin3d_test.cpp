#include <gtest/gtest.h>

#include "unimrseg/swin3d.h"
#include "parity.h"

namespace umrflow {

using test::parity;

// The relative position index we compute for a (1, 7, 7) window is the one
// stored in the authors' module.
TEST(Swin3D, RelativePositionIndexMatches) {
  if (!test::have_parity()) GTEST_SKIP() << "parity vectors are not beside the project";
  const torch::Tensor mine = model::WindowAttention3DImpl::relative_index({1, 7, 7});
  EXPECT_TRUE(torch::equal(mine, parity("swin3d_basic_layer/state_dict/blocks.0.attn.relative_position_index")));
  EXPECT_EQ(mine.max().item<std::int64_t>(), 168);
}

namespace {
/// Runs the authors' Swin layer case `group` through our layer and compares the
/// output within 1e-4 of its largest magnitude.
void expect_swin_parity(const std::string& group) {
  model::SwinLayer3D m(16, 2);
  test::load_parity_state(*m, group);
  m->eval();
  torch::NoGradGuard g;
  const torch::Tensor out = m->forward(parity(group + "/input0"));
  const torch::Tensor want = parity(group + "/output0");
  ASSERT_EQ(out.sizes(), want.sizes()) << group;
  EXPECT_LE((out - want).abs().max().item<double>(), 1e-4 * std::max(1.0, want.abs().max().item<double>())) << group;
}
}  // namespace

// The Swin layer (dim 16, 2 heads, window 7x7x1, X and Y padded) reproduces
// the authors' output within 1e-4, on an input whose X and Y are not
// multiples of 7.
TEST(Swin3D, BasicLayerParity) {
  if (!test::have_parity()) GTEST_SKIP() << "parity vectors are not beside the project";
  expect_swin_parity("swin3d_basic_layer");
}

// Below the window on X and Y (5 x 6), the released layer uses one 5x6 window
// with no padding and the first 30 rows/columns of the relative-position index.
TEST(Swin3D, BasicLayerBelowTheWindowParity) {
  if (!test::have_parity()) GTEST_SKIP() << "parity vectors are not beside the project";
  expect_swin_parity("swin3d_basic_layer_small");
}

// X below the window (4, not padded) and Y above it (11, padded to 14).
TEST(Swin3D, BasicLayerMixedAxesParity) {
  if (!test::have_parity()) GTEST_SKIP() << "parity vectors are not beside the project";
  expect_swin_parity("swin3d_basic_layer_mixed");
}

// The shrunken window is a different function from padding to 7x7: on a 5x6
// map the two disagree, so the parity cases above can tell them apart.
TEST(Swin3D, SmallMapsAreNotPadded) {
  torch::manual_seed(11);
  model::SwinLayer3D m(16, 2);
  m->eval();
  torch::NoGradGuard g;
  const torch::Tensor x = torch::randn({1, 16, 5, 6, 3});
  // With LayerNorm at its initial affine (weight 1, bias 0) a zero token stays
  // zero, so padding the input to 7x7 is what padding after the norm would do.
  const torch::Tensor padded = m->forward(torch::constant_pad_nd(x, {0, 0, 0, 1, 0, 2})).slice(2, 0, 5).slice(3, 0, 6);
  EXPECT_FALSE(torch::allclose(m->forward(x), padded, 1e-4, 1e-5));
}

}  // namespace umrflow
