#include "image2d/unimrseg2d.h"

#include <optional>
#include <stdexcept>
#include <string>

#include "unimrseg/unimrseg_parts.h"

namespace umrflow::image2d {

namespace nn = torch::nn;

namespace {

constexpr std::array<std::int64_t, 5> kLevelChannels{64, 256, 512, 1024, 2048};

nn::Sequential conv1x1_bn_relu(std::int64_t in, std::int64_t out, bool pool) {
  nn::Sequential s;
  if (pool) s->push_back(nn::AvgPool2d(2));
  s->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 1).bias(false)));
  s->push_back(nn::BatchNorm2d(out));
  s->push_back(nn::ReLU());
  return s;
}

}  // namespace

UniMRSeg2dImpl::UniMRSeg2dImpl(UniMRSeg2dOptions o) : options(std::move(o)) {
  encoder = register_module("encoder", ResNet50(options.in_channels));
  decoder = register_module("decoder", SaliencyDecoder(std::vector<std::int64_t>(kLevelChannels.begin(), kLevelChannels.end()),
                                                       options.decoder_width, options.out_channels));
  if (options.freeze_encoder)
    for (auto& t : encoder->parameters()) t.set_requires_grad(false);
  if (options.freeze_decoder)
    for (auto& t : decoder->parameters()) t.set_requires_grad(false);
  if (!options.adapter) return;
  if (options.attention_dims.size() != 5 || options.heads.size() != 5)
    throw std::invalid_argument("UniMRSeg 2D adapter: attention_dims and heads need one value per level (5)");
  for (std::size_t i = 0; i < 5; ++i) {
    const std::string n = std::to_string(i + 1);
    const std::int64_t in = i == 0 ? options.in_channels : kLevelChannels[i - 1], c = kLevelChannels[i];
    adaptor_conv[i] = register_module("adaptor_conv_" + n, conv1x1_bn_relu(in, c, true));
    fuse[i] = register_module("fuse_" + n, conv1x1_bn_relu(c, c, false));
    attention_in[i] = register_module("attention_in_" + n, nn::Sequential(nn::Conv2d(nn::Conv2dOptions(c, options.attention_dims[i], 1))));
    adaptor_transformer[i] = register_module(
        "adaptor_transformer_" + n,
        model::SwinLayer3D(options.attention_dims[i], options.heads[i], std::vector<std::int64_t>{1, options.window, options.window}, options.mlp_ratio, false));
    if (options.fuse_gamma != 1.0) {
      torch::NoGradGuard no_grad;
      fuse[i][1]->as<nn::BatchNorm2d>()->weight.fill_(options.fuse_gamma);
    }
  }
}

const torch::Tensor& UniMRSeg2dImpl::checked(const torch::Tensor& x) const {
  if (x.dim() != 4 || x.size(1) != options.in_channels || x.size(2) % 32 != 0 || x.size(3) % 32 != 0)
    throw std::runtime_error("UniMRSeg 2D: expected an image batch (B, " + std::to_string(options.in_channels) +
                             ", H, W) with H and W multiples of 32 (five halvings), got " + c10::str(x.sizes()) +
                             "; resize (image2d.resize) or crop to such a size");
  return x;
}

Outputs2d UniMRSeg2dImpl::decode(const Features2d& f) {
  std::optional<model::EvalScope> frozen;
  if (options.freeze_decoder) frozen.emplace(model::ModuleList{decoder.ptr()});
  Outputs2d out{decoder->forward(f), f};
  if (options.relu_head)
    for (auto& t : out.logits) t = torch::relu(t);
  return out;
}

Outputs2d UniMRSeg2dImpl::complete(const torch::Tensor& x) {
  checked(x);
  if (!options.freeze_encoder) return decode(encoder->features(x));
  Features2d f;
  {
    torch::NoGradGuard no_grad;
    if (options.encoder_bn_update) {
      f = encoder->features(x);
    } else {
      model::EvalScope eval({encoder.ptr()});
      f = encoder->features(x);
    }
  }
  return decode(f);
}

Outputs2d UniMRSeg2dImpl::incomplete(const torch::Tensor& x) {
  if (!options.adapter) throw std::runtime_error("the incomplete path needs adapter: true");
  return decode(adapt(x));
}

Features2d UniMRSeg2dImpl::adapt(const torch::Tensor& x) {
  if (!options.adapter) throw std::runtime_error("the adapter path needs adapter: true");
  checked(x);
  Features2d out;
  torch::Tensor prev = x;
  for (std::size_t i = 0; i < 5; ++i) {
    torch::Tensor fcp;
    {
      torch::NoGradGuard no_grad;
      model::EvalScope eval({encoder.ptr()});
      fcp = encoder->stage(static_cast<int>(i), prev);
    }
    const torch::Tensor h = fuse[i]->forward(fcp + adaptor_conv[i]->forward(prev));
    // The Swin layer works on (B, C, X, Y, Z); a 2D map is a volume of depth 1.
    const torch::Tensor s = adaptor_transformer[i]->forward(attention_in[i]->forward(h).unsqueeze(4)).squeeze(4);
    prev = out[i] = fcp + (1.0 - torch::sigmoid(s.mean(1, true))) * h;
  }
  return out;
}

}  // namespace umrflow::image2d
