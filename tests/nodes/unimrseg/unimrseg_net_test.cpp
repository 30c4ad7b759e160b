#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "umrflow/own_kernels.h"
#include "unimrseg/unimrseg_net.h"
#include "parity.h"
#include "test_paths.h"

namespace umrflow {

namespace {
struct KeyRow {
  std::string key, shape;
};
std::string keys_file(const std::string& stage) {
  return std::string(UMRFLOW_SOURCE_DIR) + "/../shared/reference/state_dict_keys/" + stage + ".tsv";
}
std::vector<KeyRow> read_keys(const std::string& stage) {
  std::ifstream in(keys_file(stage));
  std::vector<KeyRow> rows;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream s(line);
    KeyRow r;
    std::getline(s, r.key, '\t');
    std::getline(s, r.shape, '\t');
    rows.push_back(r);
  }
  return rows;
}
std::string python_shape(const torch::Tensor& t) {
  std::string s = "(";
  for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  if (t.dim() == 1) s += ",";
  return s + ")";
}
void expect_keys(model::UniMRSegNet& net, const std::string& stage) {
  const auto want = read_keys(stage);
  const auto mine = model::state_dict_order(*net);
  ASSERT_EQ(mine.size(), want.size()) << stage;
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(mine[i].first, want[i].key) << stage << " row " << i;
    EXPECT_EQ(python_shape(mine[i].second), want[i].shape) << stage << " " << want[i].key;
  }
}
std::int64_t parameter_count(model::UniMRSegNet& net) {
  std::int64_t n = 0;
  for (const auto& p : net->parameters()) n += p.numel();
  return n;
}
model::UniMRSegNetOptions small(bool adapter) {
  model::UniMRSegNetOptions o;
  o.widths = {4, 8, 8, 16};
  o.heads = {1, 2, 2, 2, 2};
  o.adapter = adapter;
  o.freeze_encoder = adapter;
  return o;
}
}  // namespace

// At the paper's widths the three stages' networks have exactly the authors'
// parameter and buffer names, shapes and order (state_dict_keys/*.tsv).
TEST(UniMRSegNet, KeysMatchTheAuthorsStateDicts) {
  if (!std::ifstream(keys_file("stage3"))) GTEST_SKIP() << "state_dict_keys are not beside the project";
  model::UniMRSegNetOptions o1;
  o1.out_channels = 4;
  model::UniMRSegNet stage1(o1);
  expect_keys(stage1, "stage1");
  model::UniMRSegNet stage2(model::UniMRSegNetOptions{});
  expect_keys(stage2, "stage2");
  model::UniMRSegNetOptions o3;
  o3.adapter = true;
  model::UniMRSegNet stage3(o3);
  expect_keys(stage3, "stage3");
}

// Parameter counts equal the figures derived from the released code
// (55,887,620 / 55,887,555 / 91,444,077; the last is the paper's "87 MB").
TEST(UniMRSegNet, ParameterCounts) {
  model::UniMRSegNetOptions o1;
  o1.out_channels = 4;
  model::UniMRSegNet stage1(o1), stage2(model::UniMRSegNetOptions{});
  model::UniMRSegNetOptions o3;
  o3.adapter = true;
  model::UniMRSegNet stage3(o3);
  EXPECT_EQ(parameter_count(stage1), 55887620);
  EXPECT_EQ(parameter_count(stage2), 55887555);
  EXPECT_EQ(parameter_count(stage3), 91444077);
}

// The adapter's level 1 is Fcp + (1 - sigmoid(mean_CZ swin(h))) * h with
// h = fuse(Fcp + conv(x)), computed here from the submodules step by step.
TEST(UniMRSegNet, ReverseAttentionOfLevelOne) {
  torch::manual_seed(3);
  model::UniMRSegNet net(small(true));
  net->eval();
  torch::NoGradGuard g;
  const torch::Tensor x = torch::randn({2, 4, 16, 16, 8});
  const torch::Tensor fcp = net->inc->forward(x);
  const torch::Tensor h = net->fuse[0]->forward(fcp + net->adaptor_conv[0]->forward(x));
  const torch::Tensor t = net->adaptor_transformer[0]->forward(h);
  torch::Tensor a = torch::empty({2, 1, 16, 16, 1});
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) a[b][0][i][j][0] = 1.0 - torch::sigmoid(t[b].select(1, i).select(1, j).mean());
  const torch::Tensor want = fcp + a * h;
  const model::Levels f = net->adapt(x);
  EXPECT_TRUE(torch::allclose(f[0], want, 1e-5, 1e-6));
  EXPECT_EQ(f[4].sizes(), (std::vector<std::int64_t>{2, 16, 2, 2, 1}));
}

// With a frozen encoder, training touches no encoder weight; its BatchNorm
// statistics move in the complete path (released) unless encoder_bn_update is
// off, and never in the adapter path.
TEST(UniMRSegNet, FrozenEncoderAndItsBatchNormStatistics) {
  for (bool update : {true, false}) {
    torch::manual_seed(4);
    auto o = small(true);
    o.encoder_bn_update = update;
    model::UniMRSegNet net(o);
    net->train();
    const torch::Tensor x = torch::randn({2, 4, 16, 16, 8});
    const torch::Tensor before = net->inc->double_conv[1]->as<torch::nn::BatchNorm3d>()->running_mean.clone();
    const torch::Tensor loss = net->decode(net->encode_complete(x)).sum() + net->decode(net->adapt(x)).sum();
    loss.backward();
    for (const auto& p : net->inc->parameters()) EXPECT_FALSE(p.grad().defined());
    EXPECT_TRUE(net->fuse[0]->parameters()[0].grad().defined());
    EXPECT_TRUE(net->up4->parameters()[0].grad().defined());
    const torch::Tensor after = net->inc->double_conv[1]->as<torch::nn::BatchNorm3d>()->running_mean;
    EXPECT_EQ(torch::equal(before, after), !update) << "encoder_bn_update " << update;
    EXPECT_TRUE(net->inc->is_training());
  }
  torch::manual_seed(5);
  model::UniMRSegNet net(small(true));
  net->train();
  const torch::Tensor before = net->down1->parameters()[1].clone();
  const torch::Tensor mean0 = net->down1->buffers()[0].clone();
  net->adapt(torch::randn({2, 4, 16, 16, 8}));
  EXPECT_TRUE(torch::equal(mean0, net->down1->buffers()[0])) << "the adapter path ran the encoder in training mode";
  EXPECT_TRUE(torch::equal(before, net->down1->parameters()[1]));
}

// up1's centre crop (released): a 16^3 input gives 1/8-resolution features of
// 2^3 and full-size logits; without the crop the network still maps 16^3 to 16^3.
TEST(UniMRSegNet, OutputShapes) {
  for (bool crop : {true, false}) {
    auto o = small(false);
    o.centre_crop = crop;
    model::UniMRSegNet net(o);
    net->eval();
    torch::NoGradGuard g;
    const torch::Tensor x = torch::randn({1, 4, 16, 16, 16});
    const auto f = net->encode(x);
    EXPECT_EQ(f[4].sizes(), (std::vector<std::int64_t>{1, 16, 2, 2, 2}));
    EXPECT_EQ(net->decode(f).sizes(), (std::vector<std::int64_t>{1, 3, 16, 16, 16}));
    // The crop keeps the centre of the upsampled ASPP output: with it, up1
    // differs from a plain 1/8 concat; without it, it is that concat.
    const torch::Tensor plain = net->up1->conv->forward(torch::cat({f[3], f[4]}, 1));
    const torch::Tensor got = crop ? net->up1->forward(f[4], f[3]) : net->decode(f);
    if (crop) EXPECT_FALSE(torch::allclose(got, plain));
  }
  auto o = small(false);
  o.relu_head = true;
  o.out_channels = 4;
  model::UniMRSegNet net(o);
  EXPECT_GE(net->decode(net->encode(torch::randn({1, 4, 16, 16, 16}))).min().item<double>(), 0.0);
}

// fuse_gamma scales every fuse BatchNorm's initial weight; at a small value
// the adapter's levels stay close to the frozen encoder's (F_i ~ Fcp), which
// at the default they do not.
TEST(UniMRSegNet, FuseGammaStartsNearThePlainPath) {
  const torch::Tensor x = torch::randn({2, 4, 16, 16, 8});
  double gap[2];
  for (int k = 0; k < 2; ++k) {
    torch::manual_seed(6);
    auto o = small(true);
    o.fuse_gamma = k == 0 ? 1.0 : 0.001;
    model::UniMRSegNet net(o);
    net->eval();
    torch::NoGradGuard g;
    EXPECT_FLOAT_EQ(net->fuse[2][1]->as<torch::nn::BatchNorm3d>()->weight[0].item<float>(), static_cast<float>(o.fuse_gamma));
    const auto adapted = net->adapt(x);
    const torch::Tensor plain = net->inc->forward(x);
    gap[k] = (adapted[0] - plain).abs().mean().item<double>() / plain.abs().mean().item<double>();
  }
  EXPECT_GT(gap[0], 0.05);
  EXPECT_LT(gap[1], 0.01);
}

// The whole stage-3 network at widths 8/16/32/32 on a 24^3 input (adapter Swin
// levels 3-5 below the 7x7 window) computes the authors' complete-path logits,
// and for all 14 incomplete subsets their adapter features (levels 1-5) and
// logits, within 1e-4 of each tensor's largest magnitude.
TEST(UniMRSegNet, Stage3NarrowParity) {
  if (!test::have_parity()) GTEST_SKIP() << "parity vectors are not beside the project";
  const std::string g = "unimrseg_stage3_narrow_24";
  model::UniMRSegNetOptions o;
  o.widths = {8, 16, 32, 32};
  o.adapter = true;
  o.freeze_encoder = true;
  model::UniMRSegNet net(o);
  test::load_parity_state(*net, g);
  net->eval();
  torch::NoGradGuard no_grad;
  auto close = [](const torch::Tensor& got, const torch::Tensor& want, const std::string& what) {
    ASSERT_EQ(got.sizes(), want.sizes()) << what;
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-4 * std::max(1.0, want.abs().max().item<double>())) << what;
  };
  const torch::Tensor x = test::parity(g + "/input0");
  close(net->decode(net->encode(x)), test::parity(g + "/output0"), "complete path");
  // The released trainer's zeroed channels, subset k = 1..14.
  const std::vector<std::vector<int>> zeroed = {{0},    {1},    {2},    {3},       {0, 1},    {0, 2},    {0, 3},
                                                {1, 2}, {1, 3}, {2, 3}, {0, 1, 2}, {0, 1, 3}, {0, 2, 3}, {1, 2, 3}};
  for (std::size_t k = 1; k <= zeroed.size(); ++k) {
    torch::Tensor xk = x.clone();
    for (int c : zeroed[k - 1]) xk.select(1, c).zero_();
    const model::Levels f = net->adapt(xk);
    for (std::size_t l = 0; l < 5; ++l)
      close(f[l], test::parity(g + "/output" + std::to_string(15 + 5 * (k - 1) + l)),
            "subset " + std::to_string(k) + " level " + std::to_string(l + 1));
    close(net->decode(f), test::parity(g + "/output" + std::to_string(k)), "subset " + std::to_string(k) + " logits");
  }
}

// freeze_decoder: no decoder weight takes a gradient and its BatchNorm
// statistics stay as loaded in training, while the adapter still learns.
// decoder_bn_incomplete false: the adapter path leaves the decoder's
// statistics alone, the complete path still moves them.
TEST(UniMRSegNet, DecoderFreezingAndItsBatchNormStatistics) {
  auto bn_mean = [](model::UniMRSegNet& net) {
    return net->up4->conv->double_conv[1]->as<torch::nn::BatchNorm3d>()->running_mean.clone();
  };
  const torch::Tensor x = torch::randn({2, 4, 16, 16, 8});
  {
    torch::manual_seed(7);
    auto o = small(true);
    o.freeze_decoder = true;
    model::UniMRSegNet net(o);
    net->train();
    const torch::Tensor before = bn_mean(net);
    (net->decode(net->encode_complete(x)).sum() + net->decode_incomplete(net->adapt(x)).sum()).backward();
    for (const auto& m : net->decoder_stages())
      for (const auto& p : m->parameters()) EXPECT_FALSE(p.grad().defined());
    EXPECT_TRUE(net->fuse[0]->parameters()[0].grad().defined());
    EXPECT_TRUE(torch::equal(before, bn_mean(net)));
    EXPECT_TRUE(net->up4->is_training());
  }
  for (bool update : {true, false}) {
    torch::manual_seed(8);
    auto o = small(true);
    o.decoder_bn_incomplete = update;
    model::UniMRSegNet net(o);
    net->train();
    const torch::Tensor before = bn_mean(net);
    torch::NoGradGuard g;
    net->decode_incomplete(net->adapt(x));
    EXPECT_EQ(torch::equal(before, bn_mean(net)), !update) << "decoder_bn_incomplete " << update;
    net->decode(net->encode_complete(x));
    EXPECT_FALSE(torch::equal(before, bn_mean(net)));
  }
}

}  // namespace umrflow

namespace umrflow {

// Every parameter's gradient at the phantom profile's widths, whose narrow
// convolutions take model::conv3x3x3's own forward and backward kernels,
// equals the gradient with libtorch's convolutions throughout, for the plain
// path and the adapter path. BatchNorm uses its running statistics: in
// training mode the ASPP's pooled branch normalises two values per channel,
// where any float32 rounding difference in the forward (even a 1e-6 relative
// change of the input under libtorch alone) moves gradients by percents.
TEST(UniMRSegNet, OwnConvolutionKernelsGiveLibtorchsGradients) {
  model::UniMRSegNetOptions o;
  o.widths = {8, 16, 32, 32};
  o.heads = {1, 2, 2, 2, 2};
  o.adapter = true;
  o.centre_crop = false;
  torch::manual_seed(11);
  model::UniMRSegNet net(o);
  net->eval();
  const torch::Tensor x = torch::randn({2, 4, 16, 16, 24}), up = torch::randn({2, 3, 16, 16, 24});
  const auto gradients = [&](bool libtorch_only) {
    const OwnKernelsScope scope(!libtorch_only);
    net->zero_grad();
    ((net->decode(net->encode(x)) * up).sum() + (net->decode_incomplete(net->adapt(x)) * up).mean()).backward();
    std::map<std::string, torch::Tensor> g;
    for (const auto& p : net->named_parameters())
      if (p.value().grad().defined()) g[p.key()] = p.value().grad().clone();
    return g;
  };
  const auto own = gradients(false), libtorch = gradients(true);
  ASSERT_EQ(own.size(), libtorch.size());
  ASSERT_GT(own.size(), 40u);
  bool some_differ = false;
  for (const auto& [key, g] : own) {
    const torch::Tensor& want = libtorch.at(key);
    const double scale = std::max(want.abs().max().item<double>(), 1e-6);
    EXPECT_LE((g - want).abs().max().item<double>(), 1e-4 * scale) << key;
    some_differ = some_differ || !torch::equal(g, want);
  }
  EXPECT_TRUE(some_differ) << "the two passes gave the same bits: the own kernels were not taken";
}

}  // namespace umrflow
