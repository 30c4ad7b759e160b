#include <gtest/gtest.h>

#include "model/swin3d.h"
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

// The Swin layer (dim 16, 2 heads, window 7x7x1, X and Y padded) reproduces
// the authors' output within 1e-4, on an input whose X and Y are not
// multiples of 7.
TEST(Swin3D, BasicLayerParity) {
  if (!test::have_parity()) GTEST_SKIP() << "parity vectors are not beside the project";
  model::SwinLayer3D m(16, 2);
  test::load_parity_state(*m, "swin3d_basic_layer");
  m->eval();
  torch::NoGradGuard g;
  const torch::Tensor out = m->forward(parity("swin3d_basic_layer/input0"));
  const torch::Tensor want = parity("swin3d_basic_layer/output0");
  ASSERT_EQ(out.sizes(), want.sizes());
  EXPECT_LE((out - want).abs().max().item<double>(), 1e-4 * std::max(1.0, want.abs().max().item<double>()));
}

}  // namespace umrflow
