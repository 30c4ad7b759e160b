#include <gtest/gtest.h>

#include <torch/torch.h>

#include "image2d/convnext.h"
#include "image2d/decoder2d.h"
#include "image2d/resnet.h"
#include "loss/losses.h"

namespace umrflow::image2d {

// On ResNet-50's five levels of a 64 x 96 image the decoder gives five
// 1-channel maps of the image's size, and every head and level takes part:
// each output's gradient reaches the coarsest level.
TEST(SaliencyDecoder, FiveMapsOfTheInputSizeFromResNetLevels) {
  torch::manual_seed(2);
  ResNet50 encoder(4);
  SaliencyDecoder decoder(std::vector<std::int64_t>{64, 256, 512, 1024, 2048}, 16);
  const Features2d f = encoder->features(torch::randn({2, 4, 64, 96}));
  const auto out = decoder->forward(f);
  for (const auto& t : out) EXPECT_EQ(t.sizes(), (std::vector<std::int64_t>{2, 1, 64, 96}));
  for (int i = 0; i < 5; ++i) {
    encoder->zero_grad();
    decoder->forward(encoder->features(torch::randn({1, 4, 64, 96})))[static_cast<std::size_t>(i)].sum().backward();
    EXPECT_GT(encoder->layer4->parameters()[0].grad().abs().sum().item<double>(), 0.0) << "output " << i;
  }
  EXPECT_THROW(SaliencyDecoder(std::vector<std::int64_t>{64}, 16), std::invalid_argument);
  EXPECT_THROW(decoder->forward(Features2d(f.begin(), f.begin() + 4)), std::invalid_argument);
}

// On ConvNeXt's four levels (the finest at 1/4) with upscale 4 the decoder
// gives four maps of the input's size, one channel per class.
TEST(SaliencyDecoder, FourMapsOfTheInputSizeFromConvNeXtLevels) {
  torch::manual_seed(4);
  ConvNeXt encoder(4, std::vector<std::int64_t>{1, 1, 1, 1}, std::vector<std::int64_t>{8, 16, 24, 32});
  SaliencyDecoder decoder(encoder->level_channels(), 16, 5, 4);
  const ConvNeXtFeatures f = encoder->features(torch::randn({2, 4, 64, 96}));
  const auto out = decoder->forward(Features2d(f.begin(), f.end()));
  ASSERT_EQ(out.size(), 4U);
  for (const auto& t : out) EXPECT_EQ(t.sizes(), (std::vector<std::int64_t>{2, 5, 64, 96}));
}

// Trained with the structure loss on all five outputs, the decoder fits a
// fixed mask (a disc per image) from fixed features: the loss falls to under half its start.
TEST(SaliencyDecoder, LearnsAMaskWithTheStructureLoss) {
  torch::manual_seed(3);
  SaliencyDecoder decoder(std::vector<std::int64_t>{4, 4, 4, 4, 4}, 8);
  Features2d f;
  for (int i = 0; i < 5; ++i) f.push_back(torch::randn({2, 4, 16 >> i, 16 >> i}));
  // A disc in each image, at different places.
  const torch::Tensor y = torch::arange(32).view({32, 1}).to(torch::kFloat32), x = torch::arange(32).view({1, 32}).to(torch::kFloat32);
  const torch::Tensor mask = torch::stack({((x - 12).pow(2) + (y - 14).pow(2) < 64), ((x - 20).pow(2) + (y - 18).pow(2) < 36)})
                                 .unsqueeze(1)
                                 .to(torch::kFloat32);
  torch::optim::Adam optimizer(decoder->parameters(), torch::optim::AdamOptions(1e-2));
  const auto total = [&] {
    torch::Tensor sum = torch::zeros({});
    for (const auto& t : decoder->forward(f)) sum = sum + loss::structure_loss(t, mask, 7, 5.0);
    return sum;
  };
  const double start = total().item<double>();
  for (int step = 0; step < 60; ++step) {
    optimizer.zero_grad();
    total().backward();
    optimizer.step();
  }
  EXPECT_LT(total().item<double>(), 0.5 * start);
}

}  // namespace umrflow::image2d
