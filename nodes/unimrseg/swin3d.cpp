#include "unimrseg/swin3d.h"

namespace umrflow::model {

namespace nn = torch::nn;

torch::Tensor WindowAttention3DImpl::relative_index(const std::vector<std::int64_t>& w) {
  auto grid = torch::meshgrid({torch::arange(w[0]), torch::arange(w[1]), torch::arange(w[2])}, "ij");
  torch::Tensor coords = torch::stack({grid[0].flatten(), grid[1].flatten(), grid[2].flatten()});  // (3, N)
  torch::Tensor rel = (coords.unsqueeze(2) - coords.unsqueeze(1)).permute({1, 2, 0}).contiguous();  // (N, N, 3)
  rel.select(2, 0) += w[0] - 1;
  rel.select(2, 1) += w[1] - 1;
  rel.select(2, 2) += w[2] - 1;
  rel.select(2, 0) *= (2 * w[1] - 1) * (2 * w[2] - 1);
  rel.select(2, 1) *= 2 * w[2] - 1;
  return rel.sum(-1);
}

WindowAttention3DImpl::WindowAttention3DImpl(std::int64_t dim, std::int64_t h, std::vector<std::int64_t> window, bool qkv_bias)
    : heads(h), scale(std::pow(static_cast<double>(dim / h), -0.5)) {
  const std::int64_t table = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1);
  relative_position_bias_table = register_parameter("relative_position_bias_table", torch::zeros({table, h}));
  {
    torch::NoGradGuard g;
    // The released trunc_normal_(std=.02) truncates at +-2 absolute, i.e. 100 std: a plain normal.
    relative_position_bias_table.normal_(0, 0.02);
  }
  relative_position_index = register_buffer("relative_position_index", relative_index(window));
  qkv = register_module("qkv", nn::Linear(nn::LinearOptions(dim, 3 * dim).bias(qkv_bias)));
  proj = register_module("proj", nn::Linear(dim, dim));
}

torch::Tensor WindowAttention3DImpl::forward(const torch::Tensor& x) {
  const auto b = x.size(0), n = x.size(1), c = x.size(2);
  torch::Tensor qkv_ = qkv->forward(x).reshape({b, n, 3, heads, c / heads}).permute({2, 0, 3, 1, 4});
  torch::Tensor q = qkv_[0] * scale, k = qkv_[1], v = qkv_[2];
  torch::Tensor attn = torch::matmul(q, k.transpose(-2, -1));
  torch::Tensor bias = relative_position_bias_table.index_select(0, relative_position_index.slice(0, 0, n).slice(1, 0, n).reshape({-1}))
                           .reshape({n, n, heads})
                           .permute({2, 0, 1});
  attn = torch::softmax(attn + bias.unsqueeze(0), -1);
  return proj->forward(torch::matmul(attn, v).transpose(1, 2).reshape({b, n, c}));
}

SwinMlpImpl::SwinMlpImpl(std::int64_t dim, std::int64_t hidden) {
  fc1 = register_module("fc1", nn::Linear(dim, hidden));
  fc2 = register_module("fc2", nn::Linear(hidden, dim));
}

SwinBlock3DImpl::SwinBlock3DImpl(std::int64_t dim, std::int64_t h, std::vector<std::int64_t> w, double mlp_ratio, bool qkv_bias)
    : window(w) {
  norm1 = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({dim})));
  attn = register_module("attn", WindowAttention3D(dim, h, w, qkv_bias));
  norm2 = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({dim})));
  mlp = register_module("mlp", SwinMlp(dim, static_cast<std::int64_t>(dim * mlp_ratio)));
}

torch::Tensor SwinBlock3DImpl::forward(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  const auto b = x.size(0), d = x.size(1), h = x.size(2), w = x.size(3), c = x.size(4);
  // As released (get_window_size): an axis no longer than the window is one window, unpadded.
  const std::int64_t wd = d <= window[0] ? d : window[0], wh = h <= window[1] ? h : window[1],
                     ww = w <= window[2] ? w : window[2];
  torch::Tensor y = norm1->forward(x);
  const std::int64_t pd = (wd - d % wd) % wd, ph = (wh - h % wh) % wh, pw = (ww - w % ww) % ww;
  y = F::pad(y, F::PadFuncOptions({0, 0, 0, pw, 0, ph, 0, pd}));
  const auto dp = d + pd, hp = h + ph, wp = w + pw;
  // Partition into windows, tokens ordered (d, h, w) within each.
  torch::Tensor win = y.view({b, dp / wd, wd, hp / wh, wh, wp / ww, ww, c})
                          .permute({0, 1, 3, 5, 2, 4, 6, 7})
                          .reshape({-1, wd * wh * ww, c});
  win = attn->forward(win);
  y = win.view({b, dp / wd, hp / wh, wp / ww, wd, wh, ww, c}).permute({0, 1, 4, 2, 5, 3, 6, 7}).reshape({b, dp, hp, wp, c});
  y = y.slice(1, 0, d).slice(2, 0, h).slice(3, 0, w);
  torch::Tensor out = x + y;
  return out + mlp->forward(norm2->forward(out));
}

SwinLayer3DImpl::SwinLayer3DImpl(std::int64_t dim, std::int64_t heads, std::vector<std::int64_t> window, double mlp_ratio, bool qkv_bias) {
  blocks = register_module("blocks", nn::ModuleList());
  blocks->push_back(SwinBlock3D(dim, heads, window, mlp_ratio, qkv_bias));
}

torch::Tensor SwinLayer3DImpl::forward(const torch::Tensor& x) {
  // (B, C, X, Y, Z) -> (B, Z, X, Y, C): D is the last tensor axis, H and W the in-plane ones.
  torch::Tensor y = x.permute({0, 4, 2, 3, 1}).contiguous();
  for (const auto& block : *blocks) y = block->as<SwinBlock3D>()->forward(y);
  return y.permute({0, 4, 2, 3, 1}).contiguous();
}

}  // namespace umrflow::model
