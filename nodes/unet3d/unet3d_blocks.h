// unet3d_blocks.h: the building blocks of the UniMRSeg 3D U-Net, with the
// parameter and buffer names of the authors' modules (so state dicts move both
// ways): DoubleConv3D, Down3D, Up3D, OutConv3D, ASPP3D.
#pragma once

#include <torch/torch.h>

#include <array>

namespace umrflow::model {

/// BatchNorm per group of rows in one pass (stage 3's batched strategy).
/// While a scope of G > 1 is alive on this thread, the blocks below (and any
/// caller of batch_norm / run_sequential) normalise a batch of G*n rows as G
/// consecutive groups of n, each with its own statistics, exactly what G
/// separate calls would compute; the running statistics are updated G times,
/// in group order. BatchNorms in eval mode ignore the scope.
class BatchNormGroups {
 public:
  explicit BatchNormGroups(std::int64_t groups);
  ~BatchNormGroups();
  BatchNormGroups(const BatchNormGroups&) = delete;
  BatchNormGroups& operator=(const BatchNormGroups&) = delete;
  static std::int64_t current();

 private:
  std::int64_t previous_;
};

/// `bn` on x (N, C, ...), honouring the active BatchNormGroups: in training
/// with G > 1 groups, N must be a multiple of G.
torch::Tensor batch_norm(torch::nn::BatchNorm3dImpl& bn, const torch::Tensor& x);
/// seq->forward(x), with its BatchNorm3d children through batch_norm() and
/// its Conv3d children through conv3d().
torch::Tensor run_sequential(torch::nn::Sequential& seq, torch::Tensor x);

/// conv.forward(x), on oneDNN's kernel for a batch of one on the CPU. For a
/// float32 CPU input of one row whose N*C*D*H is at most 20480 (a 32^3 crop
/// with up to 20 channels), libtorch 1.13 picks its reference 3D convolution
/// (im2col and a matrix product), about ten times slower than oneDNN forward
/// and backward, where a batch of two goes to oneDNN. Such an input gets an
/// all-zero second row and row 0 of the result is returned: the same
/// convolution, within float32 rounding of the other kernel, and its gradients
/// (the zero row adds nothing to the weight's). Kernels of 1 are left alone
/// (the reference kernel is a plain matrix product there).
/// Along an axis where the dilation is at least the input's size (the ASPP's
/// rates 6-18 at a 4^3 or 16^3 bottleneck), every tap but the centre one reads
/// only the zero padding: such an axis is convolved with the centre tap alone
/// (kernel 1, no padding), the same sum less its zero terms, a fraction of
/// the work; the weight keeps its shape and its outer taps get zero gradients,
/// as the full convolution gives them.
/// A 3x3x3 convolution with stride, padding and dilation 1 on a float32 CPU
/// input goes through conv3x3x3() below where takes_conv3x3x3() says so.
torch::Tensor conv3d(torch::nn::Conv3dImpl& conv, const torch::Tensor& x);

/// Whether conv3x3x3() applies: x a contiguous float32 CPU (N, C, D, H, W)
/// tensor, a float32 CPU weight (out, C, 3, 3, 3), stride 1, padding 1, dilation 1, no
/// groups, no CPU autocast, own_kernels() (umrflow/own_kernels.h,
/// `execution.own_kernels`), and either umrflow's forward kernel applies
/// (conv3x3x3_own_forward()) or gradients are recorded (GradMode on, x or the
/// weight requiring grad) and the weight has fewer than 16 input or output
/// channels.
bool takes_conv3x3x3(const torch::Tensor& x, const torch::Tensor& weight, c10::IntArrayRef kernel, c10::IntArrayRef stride,
                     c10::IntArrayRef padding, c10::IntArrayRef dilation, std::int64_t groups);
/// Whether conv3x3x3()'s kernels spread their tasks over libtorch's intra-op
/// threads (its source was compiled with OpenMP; without it ATen's
/// parallel_for runs serially).
bool conv3x3x3_parallel();
/// Whether conv3x3x3() computes the forward pass of x into `out_channels`
/// channels with umrflow's kernel (conv3d_forward.h): at most 32 output
/// channels and rows of at least 16 (the kernel's vectors run along x; oneDNN's
/// along blocks of 16 channels, so it wins on short rows and wide layers).
bool conv3x3x3_own_forward(const torch::Tensor& x, std::int64_t out_channels);
/// torch::conv3d(x, weight, bias, 1, 1), avoiding oneDNN 2.6's slow cases
/// (measured at 32^3, batch 2, one core of a Zen 5 EPYC):
/// - the forward pass with few output channels: oneDNN vectorises over blocks
///   of 16 output channels and reorders its blocked result afterwards;
///   conv3x3x3_forward() (conv3d_forward.h) vectorises along x: 8 to 8
///   channels 3.0 ms against 1.0, 16 to 8 10.2 against 2.2, 16 to 16 11.8
///   against 5.3, where conv3x3x3_own_forward() says;
/// - under 16 input channels oneDNN has no vector kernel for the weight
///   gradient and falls back to im2col and a matrix product; here it comes
///   from conv3x3x3_weight_grad() (conv3d_weight_grad.h): 8 to 8 channels
///   14.8 ms against 1.5; so does the weight gradient under 16 output
///   channels on rows of 16 or more (16 to 8 channels 5.7 ms against 3.1);
/// - under 16 output channels its input-gradient kernel is about half as fast
///   as a forward convolution of the output gradient with the weight flipped
///   and its channel axes swapped, which is what is computed here (by either
///   forward kernel, as above).
/// Everything else is libtorch's. A libtorch convolution that would take the
/// reference kernel (takes_reference_kernel) runs on with_zero_row() of its
/// input, as in conv3d(); the weight gradient is summed over the real row
/// only. Without gradients to record only the forward runs. No double
/// backward.
torch::Tensor conv3x3x3(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

/// Whether libtorch 1.13 sends this convolution of x to its reference 3D
/// kernel (ConvParams::use_mkldnn for a 5-D float input: one row, no groups,
/// kernel not larger than 3 in its last two axes, N*C*D*H <= 20480), which
/// conv3d() avoids by convolving with_zero_row(x) instead.
bool takes_reference_kernel(const torch::Tensor& x, c10::IntArrayRef k, c10::IntArrayRef stride, c10::IntArrayRef dilation,
                            std::int64_t groups);
/// x with an all-zero row appended along dimension 0.
torch::Tensor with_zero_row(const torch::Tensor& x);

/// For a convolution with options `o` of an input of `sizes` (N, C, D, H, W):
/// per spatial axis, whether every off-centre tap lies wholly in the zero
/// padding (odd kernel above 1, stride 1, zero padding of dilation * (k / 2),
/// dilation >= the axis's size), so that conv3d() keeps only the centre tap.
std::array<bool, 3> taps_outside(const torch::nn::detail::ConvNdOptions<3>& o, c10::IntArrayRef sizes);

/// (Conv3d k3 p1 no bias -> BatchNorm3d -> ReLU) x 2. Keys: double_conv.{0,1,3,4}.*
struct DoubleConv3DImpl : torch::nn::Module {
  DoubleConv3DImpl(std::int64_t in, std::int64_t out);
  torch::Tensor forward(const torch::Tensor& x) { return run_sequential(double_conv, x); }
  torch::nn::Sequential double_conv{nullptr};
};
TORCH_MODULE(DoubleConv3D);

/// MaxPool3d(2) -> DoubleConv3D. Keys: maxpool_conv.1.double_conv.*
struct Down3DImpl : torch::nn::Module {
  Down3DImpl(std::int64_t in, std::int64_t out);
  torch::Tensor forward(const torch::Tensor& x) { return maxpool_conv->forward(x); }
  torch::nn::Sequential maxpool_conv{nullptr};
};
TORCH_MODULE(Down3D);

/// Trilinear x2 upsampling (align_corners) of the deeper input, padded or -
/// when it came out larger than the skip - centre-cropped to the skip's size
/// (the released code's negative F.pad), concatenated after the skip, then
/// DoubleConv3D. With `crop` false a larger upsampled tensor is an error.
/// Keys: conv.double_conv.*
struct Up3DImpl : torch::nn::Module {
  Up3DImpl(std::int64_t in, std::int64_t out, bool crop = true);
  torch::Tensor forward(const torch::Tensor& deep, const torch::Tensor& skip);
  DoubleConv3D conv{nullptr};
  bool crop;
};
TORCH_MODULE(Up3D);

/// Conv3d k1 with bias. Keys: conv.weight, conv.bias
struct OutConv3DImpl : torch::nn::Module {
  OutConv3DImpl(std::int64_t in, std::int64_t out);
  torch::Tensor forward(const torch::Tensor& x) { return conv->forward(x); }
  torch::nn::Conv3d conv{nullptr};
};
TORCH_MODULE(OutConv3D);

/// Four dilated 3x3x3 branches (no BN or ReLU per branch) and a global-pool
/// branch (1x1x1 conv, broadcast back), concatenated, 1x1x1 fuse, BN, ReLU.
/// Keys: convs.{i}.weight, pooling.1.weight, final_conv.weight, bn.*
struct ASPP3DImpl : torch::nn::Module {
  ASPP3DImpl(std::int64_t in, std::int64_t out, std::vector<std::int64_t> rates = {1, 6, 12, 18});
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::ModuleList convs{nullptr};
  torch::nn::Sequential pooling{nullptr};
  torch::nn::Conv3d final_conv{nullptr};
  torch::nn::BatchNorm3d bn{nullptr};
};
TORCH_MODULE(ASPP3D);

}  // namespace umrflow::model
