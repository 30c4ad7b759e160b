#include <algorithm>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "image2d/unimrseg2d.h"
#include "nodes/node_harness.h"
#include "umrflow/module.h"

namespace umrflow::image2d {

namespace {
UniMRSeg2dOptions adapter_options() {
  UniMRSeg2dOptions o;
  o.adapter = true;
  o.decoder_width = 8;
  o.attention_dims = {8, 8, 8, 8, 8};
  o.heads = {1, 1, 1, 1, 1};
  return o;
}

/// F_1 = Fcp + a * h with one a in (0, 1) per pixel: per pixel, the ratio
/// (F_1 - Fcp) / h over the channels where h is not tiny is one value; where
/// h is zero, F_1 is the encoder's level.
void expect_reverse_attention(const torch::Tensor& f1, const torch::Tensor& fcp, const torch::Tensor& h) {
  const torch::Tensor delta = f1 - fcp;
  const torch::Tensor big = h.abs() > 1e-2;
  ASSERT_GT(big.sum().item<std::int64_t>(), 1000);
  const torch::Tensor ratio = torch::where(big, delta / h, torch::zeros_like(h));
  const torch::Tensor hi = torch::where(big, ratio, torch::full_like(ratio, -1)).amax(1);
  const torch::Tensor lo = torch::where(big, ratio, torch::full_like(ratio, 2)).amin(1);
  const torch::Tensor some = big.any(1);
  EXPECT_LT((hi - lo).masked_select(some).abs().max().item<double>(), 1e-3);
  EXPECT_GT(lo.masked_select(some).min().item<double>(), 0.0);
  EXPECT_LT(hi.masked_select(some).max().item<double>(), 1.0);
  EXPECT_TRUE(torch::allclose(delta.masked_select(h == 0), torch::zeros({1}), 0, 1e-6));
}

UniMRSeg2dOptions convnext_options() {
  UniMRSeg2dOptions o = adapter_options();
  o.backbone = Backbone2d::convnext;
  o.convnext_depths = {1, 1, 1, 1};
  o.convnext_widths = {8, 16, 24, 32};
  o.attention_dims = {8, 8, 8, 8};
  o.heads = {1, 1, 1, 1};
  return o;
}

}  // namespace

// With every fuse_i scale at 0 the adapter adds nothing (h = ReLU(0) = 0), so
// in eval mode the adapter path gives the plain path's levels and maps exactly;
// every output is at the input's size. For ResNet-50 (five levels from 1/2)
// and ConvNeXt (four levels from 1/4, each at its stride).
TEST(UniMRSeg2d, AZeroAdapterIsThePlainPath) {
  for (const UniMRSeg2dOptions& base : {adapter_options(), convnext_options()}) {
    torch::manual_seed(1);
    UniMRSeg2dOptions o = base;
    o.fuse_gamma = 0;
    UniMRSeg2d net(o);
    net->eval();
    const std::size_t levels = o.backbone == Backbone2d::resnet50 ? 5 : 4;
    const std::int64_t first_stride = o.backbone == Backbone2d::resnet50 ? 2 : 4;
    const torch::Tensor x = torch::randn({2, 4, 64, 96});
    const Outputs2d plain = net->complete(x), adapted = net->incomplete(x);
    ASSERT_EQ(plain.logits.size(), levels);
    ASSERT_EQ(adapted.features.size(), levels);
    for (std::size_t i = 0; i < levels; ++i) {
      EXPECT_TRUE(torch::equal(plain.features[i], adapted.features[i])) << i;
      EXPECT_TRUE(torch::equal(plain.logits[i], adapted.logits[i])) << i;
      EXPECT_EQ(plain.logits[i].sizes(), (std::vector<std::int64_t>{2, 1, 64, 96}));
      EXPECT_EQ(adapted.features[i].size(2), 64 / (first_stride << i)) << i;
      EXPECT_EQ(adapted.features[i].size(3), 96 / (first_stride << i)) << i;
    }
  }
}

// With ConvNeXt the adapter's level 1 pools the image by 4 (the patchify
// stem's stride), and its defaults follow the widths: Swin layers of half
// each width with one head per 32 channels. The encoder's weights sit under
// encoder.features.* (torchvision's names); attention_dims of the wrong
// length are refused with the level count. Level 1's reverse attention
// holds as with ResNet-50: one weight in (0, 1) per pixel.
TEST(UniMRSeg2d, AConvNeXtBackboneHasFourLevelsAndItsOwnAdapterDefaults) {
  torch::manual_seed(5);
  UniMRSeg2dOptions o = convnext_options();
  o.convnext_widths = {64, 128, 256, 512};
  o.attention_dims.clear();
  o.heads.clear();
  std::vector<std::int64_t> dims, heads;
  adapter_attention(o, dims, heads);
  EXPECT_EQ(dims, (std::vector<std::int64_t>{32, 64, 128, 256}));
  EXPECT_EQ(heads, (std::vector<std::int64_t>{1, 2, 4, 8}));
  // Default heads follow the dims given, and always divide them; ResNet-50's defaults.
  UniMRSeg2dOptions given = o;
  given.attention_dims = {40, 100, 96, 8};
  adapter_attention(given, dims, heads);
  EXPECT_EQ(heads, (std::vector<std::int64_t>{1, 2, 3, 1}));
  adapter_attention(UniMRSeg2dOptions{}, dims, heads);
  EXPECT_EQ(dims, (std::vector<std::int64_t>{64, 128, 128, 256, 256}));
  EXPECT_EQ(heads, (std::vector<std::int64_t>{2, 4, 4, 8, 8}));
  UniMRSeg2d net(o);
  net->eval();
  EXPECT_EQ(net->levels(), 4U);
  EXPECT_EQ(net->adaptor_transformer[3]->named_parameters()["blocks.0.attn.qkv.weight"].size(0), 3 * 256);
  const auto names = net->named_parameters().keys();
  for (const char* key : {"encoder.features.0.0.weight", "encoder.features.7.0.layer_scale", "decoder.reduce.3.0.weight", "adaptor_conv_4.1.weight"})
    EXPECT_NE(std::find(names.begin(), names.end(), key), names.end()) << key;
  EXPECT_EQ(std::find(names.begin(), names.end(), std::string("adaptor_conv_5.1.weight")), names.end());
  const torch::Tensor x = torch::randn({1, 4, 64, 64});
  torch::NoGradGuard no_grad;
  const torch::Tensor f1 = net->adapt(x)[0];
  const torch::Tensor fcp = net->convnext->level(0, x);
  const torch::Tensor pooled = net->adaptor_conv[0]->forward(x);
  EXPECT_EQ(pooled.sizes(), (std::vector<std::int64_t>{1, 64, 16, 16}));
  expect_reverse_attention(f1, fcp, net->fuse[0]->forward(fcp + pooled));
  UniMRSeg2dOptions wrong = convnext_options();
  wrong.attention_dims = {8, 8, 8, 8, 8};
  try {
    UniMRSeg2d bad(wrong);
    FAIL() << "five attention_dims were taken for four levels";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("one value per level of the encoder (4)"), std::string::npos) << e.what();
  }
  wrong.attention_dims = {8, 8, 12, 8};
  wrong.heads = {1, 1, 8, 1};
  try {
    UniMRSeg2d bad(wrong);
    FAIL() << "8 heads were taken for 12 channels";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("level 3's Swin layer has 12 channels, which 8 heads do not divide"), std::string::npos) << e.what();
  }
}

// Reverse attention: at each level F_i - E_i(F_{i-1}) = a * h with one weight
// a in (0, 1) per pixel, shared by all channels. Checked at level 1, where h
// is recomputed from the adapter's modules and E_1 is the encoder's stem.
TEST(UniMRSeg2d, TheAdapterWeighsEachPixelByOneReverseAttentionValue) {
  torch::manual_seed(2);
  UniMRSeg2d net(adapter_options());
  net->eval();
  const torch::Tensor x = torch::randn({1, 4, 64, 64});
  torch::NoGradGuard no_grad;
  const torch::Tensor f1 = net->adapt(x)[0];
  const torch::Tensor fcp = net->resnet->stage(0, x);
  expect_reverse_attention(f1, fcp, net->fuse[0]->forward(fcp + net->adaptor_conv[0]->forward(x)));
}

// Stage 3's freezing: the encoder takes no gradient on either path; the
// adapter and decoder do; freeze_decoder keeps the decoder's BatchNorm
// statistics through training-mode passes and its weights without gradient;
// encoder_bn_update decides whether the complete path moves the encoder's statistics.
TEST(UniMRSeg2d, FrozenPartsTakeNoGradientAndKeepTheirStatistics) {
  torch::manual_seed(3);
  UniMRSeg2dOptions o = adapter_options();
  o.freeze_encoder = true;
  o.freeze_decoder = true;
  o.encoder_bn_update = false;
  UniMRSeg2d net(o);
  net->train();
  const torch::Tensor before_dec = net->decoder->reduce[0]->as<torch::nn::Sequential>()->ptr(1)->as<torch::nn::BatchNorm2d>()->running_mean.clone();
  const torch::Tensor before_enc = net->resnet->bn1->running_mean.clone();
  const torch::Tensor x = torch::randn({2, 4, 64, 64});
  (net->incomplete(x).logits[0].sum() + net->complete(x).logits[0].sum()).backward();
  for (const auto& p : net->encoder->parameters()) EXPECT_FALSE(p.grad().defined());
  for (const auto& p : net->decoder->parameters()) EXPECT_FALSE(p.grad().defined());
  EXPECT_GT(net->adaptor_conv[2]->parameters()[0].grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(net->adaptor_transformer[4]->parameters()[0].grad().abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(net->decoder->reduce[0]->as<torch::nn::Sequential>()->ptr(1)->as<torch::nn::BatchNorm2d>()->running_mean, before_dec));
  EXPECT_TRUE(torch::equal(net->resnet->bn1->running_mean, before_enc));
  // encoder_bn_update (released): the complete path moves the frozen encoder's
  // statistics, the adapter path (eval mode inside) does not.
  o.encoder_bn_update = true;
  UniMRSeg2d released(o);
  released->train();
  const torch::Tensor initial = released->resnet->bn1->running_mean.clone();
  released->incomplete(x);
  EXPECT_TRUE(torch::equal(released->resnet->bn1->running_mean, initial));
  released->complete(x);
  EXPECT_FALSE(torch::equal(released->resnet->bn1->running_mean, initial));
  EXPECT_THROW(net->complete(torch::randn({1, 4, 48, 64})), std::runtime_error);
  EXPECT_THROW(net->complete(torch::randn({1, 3, 64, 64})), std::runtime_error);
}

// The node's `auto` port sends the complete subset through the plain path and
// the others through the adapter, row for row; weights sit under encoder.*
// with torchvision's names, decoder.* and the adapter's names.
// A `present` with other than two columns is refused.
TEST(UniMRSeg2d, TheNodeRoutesSubsetsByTheirMasks) {
  torch::manual_seed(4);
  auto node = test::make_node("image2d.unimrseg", "{adapter: true, decoder_width: 8, attention_dims: [8, 8, 8, 8, 8], heads: [1, 1, 1, 1, 1]}");
  auto& module_node = dynamic_cast<ModuleNode&>(*node);
  module_node.module().eval();
  const auto names = module_node.module().named_parameters().keys();
  for (const char* key : {"encoder.conv1.weight", "encoder.layer4.2.bn3.bias", "decoder.heads.0.weight", "adaptor_conv_5.1.weight",
                          "adaptor_transformer_3.blocks.0.attn.qkv.weight"})
    EXPECT_NE(std::find(names.begin(), names.end(), key), names.end()) << key;
  const torch::Tensor x = torch::randn({3, 4, 64, 64});
  Packet automatic;
  automatic.tensors = {{"image", x}, {"present", torch::tensor({0, 1, 1, 1, 1, 0}).view({3, 2})}};
  Context ctx(1, 0, 0, "net", false);
  Packet out = module_node.forward({Packet{}, Packet{}, Packet{}, automatic}, ctx);
  Packet complete, incomplete;
  complete.tensors["image"] = x.narrow(0, 1, 1);
  incomplete.tensors["image"] = torch::cat({x.narrow(0, 0, 1), x.narrow(0, 2, 1)});
  const torch::Tensor plain = module_node.forward({complete, Packet{}, Packet{}, Packet{}}, ctx).at("logits");
  const torch::Tensor adapted = module_node.forward({Packet{}, incomplete, Packet{}, Packet{}}, ctx).at("logits");
  EXPECT_TRUE(torch::allclose(out.at("logits")[1], plain[0], 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(out.at("logits")[0], adapted[0], 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(out.at("logits")[2], adapted[1], 1e-4, 1e-4));
  EXPECT_FALSE(torch::allclose(plain[0], module_node.forward({Packet{}, complete, Packet{}, Packet{}}, ctx).at("logits")[0], 1e-4, 1e-4));
  EXPECT_THROW(module_node.forward({complete, incomplete, Packet{}, Packet{}}, ctx), std::runtime_error);
  // `present` must have one column per modality (two), not one per channel.
  Packet per_channel;
  per_channel.tensors = {{"image", x}, {"present", torch::ones({3, 4}, torch::kLong)}};
  EXPECT_THROW(module_node.forward({Packet{}, Packet{}, Packet{}, per_channel}, ctx), std::runtime_error);
}

// With `backbone: convnext` the node gives four levels: side.2..side.4 and
// features.1..features.4, no side.5 or features.5, through every port
// (complete, incomplete by groups, and auto, which reassembles the four).
TEST(UniMRSeg2d, TheConvNeXtNodeGivesFourLevelsOnEveryPort) {
  torch::manual_seed(6);
  auto node = test::make_node("image2d.unimrseg",
                              "{backbone: convnext, convnext_depths: [1, 1, 1, 1], convnext_widths: [8, 16, 24, 32], adapter: true, decoder_width: 8, "
                              "out_channels: 3}");
  auto& module_node = dynamic_cast<ModuleNode&>(*node);
  module_node.module().eval();
  const torch::Tensor x = torch::randn({4, 4, 64, 64});
  Packet complete, incomplete, groups, automatic;
  complete.tensors["image"] = x;
  incomplete.tensors["image"] = x;
  groups.tensors["group"] = torch::tensor({0, 0, 1, 1});
  automatic.tensors = {{"image", x}, {"present", torch::tensor({1, 1, 1, 0}).view({2, 2})}};
  Context ctx(1, 0, 0, "net", false);
  const Packet outs[] = {module_node.forward({complete, Packet{}, Packet{}, Packet{}}, ctx),
                         module_node.forward({Packet{}, incomplete, groups, Packet{}}, ctx),
                         module_node.forward({Packet{}, Packet{}, Packet{}, automatic}, ctx)};
  for (const Packet& out : outs) {
    EXPECT_EQ(out.at("logits").sizes(), (std::vector<std::int64_t>{4, 3, 64, 64}));
    for (int i = 2; i <= 4; ++i) EXPECT_EQ(out.at("side." + std::to_string(i)).sizes(), (std::vector<std::int64_t>{4, 3, 64, 64})) << i;
    EXPECT_EQ(out.at("features.4").sizes(), (std::vector<std::int64_t>{4, 32, 2, 2}));
    EXPECT_EQ(out.tensors.count("side.5"), 0U);
    EXPECT_EQ(out.tensors.count("features.5"), 0U);
  }
  // auto: rows 0-1 (both modalities) are the plain path's, rows 2-3 the adapter's.
  EXPECT_TRUE(torch::allclose(outs[2].at("logits").narrow(0, 0, 2), outs[0].at("logits").narrow(0, 0, 2), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(outs[2].at("logits").narrow(0, 2, 2), outs[1].at("logits").narrow(0, 2, 2), 1e-4, 1e-4));
}

}  // namespace umrflow::image2d
