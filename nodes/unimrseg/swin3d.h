// swin3d.h: the 3D Swin layer of the reverse-attention adapter, as released
// (a Video-Swin BasicLayer with depth 1): window (1, 7, 7) over (Z, X, Y), so
// 7x7 in-plane and 1 along the last tensor axis; no shift; no qkv bias;
// pre-norm blocks x + Attn(LN(x)), x + MLP(LN(x)) with MLP ratio 4 and GELU;
// X and Y zero-padded (after the first LayerNorm) to multiples of the window.
// An axis no longer than the window becomes one window of its own size, with
// no padding (the released get_window_size); the attention then uses the first
// N rows and columns of the 7x7 relative-position index, as released, which
// are not the small window's own relative positions.
// Input and output are (B, C, X, Y, Z). Names follow the authors' modules:
// blocks.0.{norm1,attn.qkv,attn.proj,attn.relative_position_bias_table,
// attn.relative_position_index,norm2,mlp.fc1,mlp.fc2}.
#pragma once

#include <torch/torch.h>

namespace umrflow::model {

struct WindowAttention3DImpl : torch::nn::Module {
  WindowAttention3DImpl(std::int64_t dim, std::int64_t heads, std::vector<std::int64_t> window, bool qkv_bias);
  /// x: (windows, tokens, C).
  torch::Tensor forward(const torch::Tensor& x);
  /// The relative position index of a window, as Video Swin defines it.
  static torch::Tensor relative_index(const std::vector<std::int64_t>& window);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  torch::Tensor relative_position_bias_table, relative_position_index;
  std::int64_t heads;
  double scale;
};
TORCH_MODULE(WindowAttention3D);

struct SwinMlpImpl : torch::nn::Module {
  SwinMlpImpl(std::int64_t dim, std::int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x) { return fc2->forward(torch::gelu(fc1->forward(x))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SwinMlp);

struct SwinBlock3DImpl : torch::nn::Module {
  SwinBlock3DImpl(std::int64_t dim, std::int64_t heads, std::vector<std::int64_t> window, double mlp_ratio, bool qkv_bias);
  /// x: (B, D, H, W, C).
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  WindowAttention3D attn{nullptr};
  SwinMlp mlp{nullptr};
  std::vector<std::int64_t> window;
};
TORCH_MODULE(SwinBlock3D);

struct SwinLayer3DImpl : torch::nn::Module {
  /// window as (Z, X, Y) extents, the released (1, 7, 7) by default.
  SwinLayer3DImpl(std::int64_t dim, std::int64_t heads, std::vector<std::int64_t> window = {1, 7, 7}, double mlp_ratio = 4.0,
                  bool qkv_bias = false);
  /// x: (B, C, X, Y, Z) -> same shape.
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::ModuleList blocks{nullptr};
};
TORCH_MODULE(SwinLayer3D);

}  // namespace umrflow::model
