#include "unimrseg/unimrseg_net.h"

#include <optional>

#include <stdexcept>

namespace umrflow::model {

namespace nn = torch::nn;

UniMRSegNetImpl::UniMRSegNetImpl(UniMRSegNetOptions o) : options(std::move(o)) {
  encoder = UNet3DEncoder(options.in_channels, options.widths, options.rates);
  decoder = UNet3DDecoder(options.widths, options.out_channels, options.centre_crop, options.relu_head);
  inc = register_module("inc", encoder->inc);
  down1 = register_module("down1", encoder->down1);
  down2 = register_module("down2", encoder->down2);
  down3 = register_module("down3", encoder->down3);
  aspp = register_module("aspp", encoder->aspp);
  up1 = register_module("up1", decoder->up1);
  up2 = register_module("up2", decoder->up2);
  up3 = register_module("up3", decoder->up3);
  up4 = register_module("up4", decoder->up4);
  outc = register_module("outc", decoder->outc);
  if (options.freeze_encoder)
    for (auto& p : encoder_stages()) for (auto& t : p->parameters()) t.set_requires_grad(false);
  if (options.freeze_decoder)
    for (auto& p : decoder_stages()) for (auto& t : p->parameters()) t.set_requires_grad(false);
  if (!options.adapter) return;
  UniMRSegAdapterOptions a;
  a.in_channels = options.in_channels;
  a.widths = options.widths;
  a.heads = options.heads;
  a.window = options.window;
  a.mlp_ratio = options.mlp_ratio;
  a.fuse_gamma = options.fuse_gamma;
  adapter = UniMRSegAdapter(a);
  for (int i = 0; i < 5; ++i) {
    adaptor_conv[i] = register_module("adaptor_conv_" + std::to_string(i + 1), adapter->adaptor_conv[i]);
    fuse[i] = register_module("fuse_" + std::to_string(i + 1), adapter->fuse[i]);
  }
  for (int i = 0; i < 5; ++i)
    adaptor_transformer[i] = register_module("adaptor_transformer_" + std::to_string(i + 1), adapter->adaptor_transformer[i]);
}

std::vector<std::shared_ptr<nn::Module>> UniMRSegNetImpl::encoder_stages() const { return encoder->stages(); }

std::vector<std::shared_ptr<nn::Module>> UniMRSegNetImpl::decoder_stages() const { return decoder->stages(); }

Levels UniMRSegNetImpl::encode(const torch::Tensor& x) { return encoder->encode(x); }

Levels UniMRSegNetImpl::encode_complete(const torch::Tensor& x) {
  return encoder->encode_plain(x, options.freeze_encoder, options.encoder_bn_update);
}

torch::Tensor UniMRSegNetImpl::decode_incomplete(const Levels& f) {
  if (options.decoder_bn_incomplete || options.freeze_decoder) return decode(f);
  EvalScope eval(decoder_stages());
  return decode(f);
}

torch::Tensor UniMRSegNetImpl::decode(const Levels& f) {
  std::optional<EvalScope> frozen;
  if (options.freeze_decoder) frozen.emplace(decoder_stages());
  return decoder->decode(f);
}

Levels UniMRSegNetImpl::adapt(const torch::Tensor& x) {
  if (!options.adapter) throw std::runtime_error("this network has no adapter (set `adapter: true`)");
  return adapter->adapt(x, *encoder);
}

std::vector<std::pair<std::string, torch::Tensor>> state_dict_order(nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  std::function<void(nn::Module&, const std::string&)> walk = [&](nn::Module& m, const std::string& prefix) {
    for (auto& p : m.named_parameters(false)) out.emplace_back(prefix + p.key(), p.value());
    for (auto& b : m.named_buffers(false)) out.emplace_back(prefix + b.key(), b.value());
    for (auto& c : m.named_children()) walk(*c.value(), prefix + c.key() + ".");
  };
  walk(module, "");
  return out;
}

}  // namespace umrflow::model
