#include "image2d/unimrseg2d.h"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>

#include "unimrseg/unimrseg_parts.h"

namespace umrflow::image2d {

namespace nn = torch::nn;

namespace {

nn::Sequential conv1x1_bn_relu(std::int64_t in, std::int64_t out, std::int64_t pool) {
  nn::Sequential s;
  if (pool > 1) s->push_back(nn::AvgPool2d(pool));
  s->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 1).bias(false)));
  s->push_back(nn::BatchNorm2d(out));
  s->push_back(nn::ReLU());
  return s;
}

}  // namespace

void adapter_attention(const UniMRSeg2dOptions& o, std::vector<std::int64_t>& dims, std::vector<std::int64_t>& heads) {
  dims = o.attention_dims;
  if (dims.empty() && o.backbone == Backbone2d::resnet50) dims = {64, 128, 128, 256, 256};
  if (dims.empty())
    for (std::int64_t w : o.convnext_widths) dims.push_back(std::max<std::int64_t>(1, w / 2));
  heads = o.heads;
  if (heads.empty()) {
    for (std::int64_t d : dims) {
      std::int64_t h = std::max<std::int64_t>(1, d / 32);
      while (d % h != 0) --h;  // the largest count up to one per 32 channels that divides d
      heads.push_back(h);
    }
  }
}

UniMRSeg2dImpl::UniMRSeg2dImpl(UniMRSeg2dOptions o) : options(std::move(o)) {
  // Level 1's stride over the image: ResNet-50's stem halves it, ConvNeXt's patchify stem quarters it.
  std::int64_t first_stride = 2;
  if (options.backbone == Backbone2d::resnet50) {
    resnet = ResNet50(options.in_channels);
    encoder = register_module("encoder", resnet);
    level_channels = {64, 256, 512, 1024, 2048};
  } else {
    convnext = ConvNeXt(options.in_channels, options.convnext_depths, options.convnext_widths);
    encoder = register_module("encoder", convnext);
    level_channels = convnext->level_channels();
    first_stride = 4;
  }
  decoder = register_module("decoder", SaliencyDecoder(level_channels, options.decoder_width, options.out_channels, first_stride));
  if (options.freeze_encoder)
    for (auto& t : encoder->parameters()) t.set_requires_grad(false);
  if (options.freeze_decoder)
    for (auto& t : decoder->parameters()) t.set_requires_grad(false);
  if (!options.adapter) return;
  std::vector<std::int64_t> dims, heads;
  adapter_attention(options, dims, heads);
  if (dims.size() != levels() || heads.size() != levels())
    throw std::invalid_argument("UniMRSeg 2D adapter: attention_dims and heads need one value per level of the encoder (" + std::to_string(levels()) +
                                "), got " + std::to_string(dims.size()) + " and " + std::to_string(heads.size()) + "; leave them out for the defaults");
  for (std::size_t i = 0; i < levels(); ++i)
    if (heads[i] < 1 || dims[i] % heads[i] != 0)
      throw std::invalid_argument("UniMRSeg 2D adapter: level " + std::to_string(i + 1) + "'s Swin layer has " + std::to_string(dims[i]) +
                                  " channels, which " + std::to_string(heads[i]) + " heads do not divide; change attention_dims or heads");
  for (std::size_t i = 0; i < levels(); ++i) {
    const std::string n = std::to_string(i + 1);
    const std::int64_t in = i == 0 ? options.in_channels : level_channels[i - 1], c = level_channels[i];
    adaptor_conv.push_back(register_module("adaptor_conv_" + n, conv1x1_bn_relu(in, c, i == 0 ? first_stride : 2)));
    fuse.push_back(register_module("fuse_" + n, conv1x1_bn_relu(c, c, 1)));
    attention_in.push_back(register_module("attention_in_" + n, nn::Sequential(nn::Conv2d(nn::Conv2dOptions(c, dims[i], 1)))));
    adaptor_transformer.push_back(register_module(
        "adaptor_transformer_" + n,
        model::SwinLayer3D(dims[i], heads[i], std::vector<std::int64_t>{1, options.window, options.window}, options.mlp_ratio, false)));
    if (options.fuse_gamma != 1.0) {
      torch::NoGradGuard no_grad;
      fuse[i][1]->as<nn::BatchNorm2d>()->weight.fill_(options.fuse_gamma);
    }
  }
}

const torch::Tensor& UniMRSeg2dImpl::checked(const torch::Tensor& x) const {
  if (x.dim() != 4 || x.size(1) != options.in_channels || x.size(2) % 32 != 0 || x.size(3) % 32 != 0)
    throw std::runtime_error("UniMRSeg 2D: expected an image batch (B, " + std::to_string(options.in_channels) +
                             ", H, W) with H and W multiples of 32 (the encoder's coarsest level is 1/32), got " + c10::str(x.sizes()) +
                             "; resize (image2d.resize) or crop to such a size");
  return x;
}

Features2d UniMRSeg2dImpl::encode(const torch::Tensor& x) {
  if (resnet) return resnet->features(x);
  const ConvNeXtFeatures f = convnext->features(x);
  return Features2d(f.begin(), f.end());
}

torch::Tensor UniMRSeg2dImpl::encoder_level(int i, const torch::Tensor& x) { return resnet ? resnet->stage(i, x) : convnext->level(i, x); }

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
  if (!options.freeze_encoder) return decode(encode(x));
  Features2d f;
  {
    torch::NoGradGuard no_grad;
    if (options.encoder_bn_update) {
      f = encode(x);
    } else {
      model::EvalScope eval({encoder});
      f = encode(x);
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
  Features2d out(levels());
  torch::Tensor prev = x;
  for (std::size_t i = 0; i < levels(); ++i) {
    torch::Tensor fcp;
    {
      torch::NoGradGuard no_grad;
      model::EvalScope eval({encoder});
      fcp = encoder_level(static_cast<int>(i), prev);
    }
    const torch::Tensor h = fuse[i]->forward(fcp + adaptor_conv[i]->forward(prev));
    // The Swin layer works on (B, C, X, Y, Z); a 2D map is a volume of depth 1.
    const torch::Tensor s = adaptor_transformer[i]->forward(attention_in[i]->forward(h).unsqueeze(4)).squeeze(4);
    prev = out[i] = fcp + (1.0 - torch::sigmoid(s.mean(1, true))) * h;
  }
  return out;
}

}  // namespace umrflow::image2d
