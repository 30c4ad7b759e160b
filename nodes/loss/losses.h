// losses.h: the losses of UniMRSeg as plain functions (the nodes wrap them).
// Semantics follow the libraries the released code calls; see docs/nodes.md.
#pragma once

#include <torch/types.h>

namespace umrflow::loss {

/// MONAI DiceLoss(sigmoid=True) defaults: p = sigmoid(logits); per (sample,
/// channel) 1 - (2*sum(p*g) + 1e-5) / (sum(p) + sum(g) + 1e-5) over the spatial
/// axes; mean over samples and channels. `target` may be soft (values in [0, 1]).
/// With `weight` (same shape, values in [0, 1]) every sum runs over w*p and
/// w*g instead: voxels of weight 0 take no part.
torch::Tensor soft_dice(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& weight = {});

/// MONAI 1.2 SSIMLoss defaults, in 3D for (B, C, X, Y, Z) and in 2D for
/// (B, C, H, W) (spatial_dims 3 or 2, by the tensors' rank): separable
/// Gaussian window of `win` per axis (sigma 1.5), valid convolution, data
/// range 1, k1 0.01, k2 0.03, population variances; SSIM map averaged per
/// sample over channels and positions; loss = mean over samples of
/// (1 - ssim). Needs every spatial size >= win.
torch::Tensor ssim(const torch::Tensor& pred, const torch::Tensor& target, std::int64_t win = 11, double sigma = 1.5, double data_range = 1.0);

/// NT-Xent over L2-normalised rows. `complete` and `missing` are (B, D); row
/// pairs (complete_i, missing_i) are positives, rows of other samples negatives.
/// "code" (released): the denominator holds the negatives only; "paper" (Eq. 1):
/// it holds every other row, the positive included. Mean over the 2B rows.
torch::Tensor nt_xent(const torch::Tensor& complete, const torch::Tensor& missing, double temperature, bool paper_variant);

/// The structure loss of the 2D SOD recipe (weighted BCE + weighted IoU, as
/// SSLSOD trains its side outputs; ../shared/reference/unimrseg.md section 3).
/// `logits` and `mask` are (B, 1, H, W), the mask in [0, 1]. Each pixel's
/// weight is w = 1 + `boundary_weight` |avg(mask) - mask|, avg the mean over a
/// `window` x `window` square centred on it, zeros beyond the border counted
/// (avg_pool2d with padding window / 2 and count_include_pad). Per image:
///   wbce = sum(w * bce(logits, mask)) / sum(w)
///   wiou = 1 - (sum(w p m) + 1) / (sum(w (p + m)) - sum(w p m) + 1),  p = sigmoid(logits)
/// and the loss is the mean over images of wbce + wiou. `window` is odd.
torch::Tensor structure_loss(const torch::Tensor& logits, const torch::Tensor& mask, std::int64_t window = 31, double boundary_weight = 5.0);

}  // namespace umrflow::loss
