#include "model/unimrseg_net.h"

#include <optional>

#include <stdexcept>

namespace umrflow::model {

namespace nn = torch::nn;

namespace {
nn::Sequential cbr(std::int64_t in, std::int64_t out, bool pool) {
  nn::Sequential s;
  if (pool) s->push_back(nn::MaxPool3d(2));
  s->push_back(nn::Conv3d(nn::Conv3dOptions(in, out, 3).padding(1).bias(false)));
  s->push_back(nn::BatchNorm3d(out));
  s->push_back(nn::ReLU());
  return s;
}

/// Sets `modules` to eval mode for the scope, restoring each one's mode after.
class EvalScope {
 public:
  explicit EvalScope(std::vector<std::shared_ptr<nn::Module>> modules) : modules_(std::move(modules)) {
    for (auto& m : modules_) {
      was_.push_back(m->is_training());
      m->eval();
    }
  }
  ~EvalScope() {
    for (std::size_t i = 0; i < modules_.size(); ++i) modules_[i]->train(was_[i]);
  }

 private:
  std::vector<std::shared_ptr<nn::Module>> modules_;
  std::vector<bool> was_;
};
}  // namespace

UniMRSegNetImpl::UniMRSegNetImpl(UniMRSegNetOptions o) : options(std::move(o)) {
  const auto& w = options.widths;
  if (w.size() != 4) throw std::invalid_argument("widths: expected 4 encoder widths, got " + std::to_string(w.size()));
  if (options.heads.size() != 5) throw std::invalid_argument("heads: expected 5 head counts (one per level)");
  inc = register_module("inc", DoubleConv3D(options.in_channels, w[0]));
  down1 = register_module("down1", Down3D(w[0], w[1]));
  down2 = register_module("down2", Down3D(w[1], w[2]));
  down3 = register_module("down3", Down3D(w[2], w[3]));
  aspp = register_module("aspp", ASPP3D(w[3], w[3], options.rates));
  up1 = register_module("up1", Up3D(2 * w[3], w[2]));
  up2 = register_module("up2", Up3D(2 * w[2], w[1]));
  up3 = register_module("up3", Up3D(2 * w[1], w[0]));
  up4 = register_module("up4", Up3D(2 * w[0], w[0]));
  outc = register_module("outc", OutConv3D(w[0], options.out_channels));
  if (options.freeze_encoder)
    for (auto& p : encoder_stages()) for (auto& t : p->parameters()) t.set_requires_grad(false);
  if (options.freeze_decoder)
    for (auto& p : decoder_stages()) for (auto& t : p->parameters()) t.set_requires_grad(false);
  if (!options.adapter) return;
  const std::array<std::int64_t, 5> width{w[0], w[1], w[2], w[3], w[3]};
  for (int i = 0; i < 5; ++i) {
    const std::int64_t in = i == 0 ? options.in_channels : width[i - 1];
    const bool pool = i >= 1 && i <= 3;
    adaptor_conv[i] = register_module("adaptor_conv_" + std::to_string(i + 1), cbr(in, width[i], pool));
    fuse[i] = register_module("fuse_" + std::to_string(i + 1), cbr(width[i], width[i], false));
    if (options.fuse_gamma != 1.0) {
      torch::NoGradGuard no_grad;
      fuse[i][1]->as<nn::BatchNorm3d>()->weight.fill_(options.fuse_gamma);
    }
  }
  for (int i = 0; i < 5; ++i)
    adaptor_transformer[i] = register_module("adaptor_transformer_" + std::to_string(i + 1),
                                             SwinLayer3D(width[i], options.heads[i], options.window, options.mlp_ratio, false));
}

std::vector<std::shared_ptr<nn::Module>> UniMRSegNetImpl::encoder_stages() const {
  return {inc.ptr(), down1.ptr(), down2.ptr(), down3.ptr(), aspp.ptr()};
}

Levels UniMRSegNetImpl::encode(const torch::Tensor& x) {
  Levels f;
  f[0] = inc->forward(x);
  f[1] = down1->forward(f[0]);
  f[2] = down2->forward(f[1]);
  f[3] = down3->forward(f[2]);
  f[4] = aspp->forward(f[3]);
  return f;
}

Levels UniMRSegNetImpl::encode_complete(const torch::Tensor& x) {
  if (!options.freeze_encoder) return encode(x);
  torch::NoGradGuard no_grad;
  if (options.encoder_bn_update) return encode(x);
  EvalScope eval(encoder_stages());
  return encode(x);
}

std::vector<std::shared_ptr<nn::Module>> UniMRSegNetImpl::decoder_stages() const {
  return {up1.ptr(), up2.ptr(), up3.ptr(), up4.ptr(), outc.ptr()};
}

torch::Tensor UniMRSegNetImpl::decode_incomplete(const Levels& f) {
  if (options.decoder_bn_incomplete || options.freeze_decoder) return decode(f);
  EvalScope eval(decoder_stages());
  return decode(f);
}

torch::Tensor UniMRSegNetImpl::decode(const Levels& f) {
  std::optional<EvalScope> frozen;
  if (options.freeze_decoder) frozen.emplace(decoder_stages());
  // Without the released crop, up1 concatenates at 1/8 resolution directly
  // (the ASPP keeps the resolution, so upsampling and cropping cancel out).
  torch::Tensor y = options.centre_crop ? up1->forward(f[4], f[3]) : up1->conv->forward(torch::cat({f[3], f[4]}, 1));
  y = up2->forward(y, f[2]);
  y = up3->forward(y, f[1]);
  y = up4->forward(y, f[0]);
  y = outc->forward(y);
  return options.relu_head ? torch::relu(y) : y;
}

Levels UniMRSegNetImpl::adapt(const torch::Tensor& x) {
  if (!options.adapter) throw std::runtime_error("this network has no adapter (set `adapter: true`)");
  const auto stages = encoder_stages();
  Levels out;
  torch::Tensor prev = x;
  for (int i = 0; i < 5; ++i) {
    torch::Tensor fcp;
    {
      // The released adapter runs each frozen encoder stage in eval mode without autograd.
      torch::NoGradGuard no_grad;
      EvalScope eval({stages[i]});
      switch (i) {
        case 0: fcp = inc->forward(prev); break;
        case 1: fcp = down1->forward(prev); break;
        case 2: fcp = down2->forward(prev); break;
        case 3: fcp = down3->forward(prev); break;
        default: fcp = aspp->forward(prev); break;
      }
    }
    const torch::Tensor h = fuse[i]->forward(fcp + adaptor_conv[i]->forward(prev));
    const torch::Tensor t = adaptor_transformer[i]->forward(h);
    const torch::Tensor a = 1.0 - torch::sigmoid(t.mean(4, true).mean(1, true));
    out[i] = fcp + a * h;
    prev = out[i];
  }
  return out;
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
