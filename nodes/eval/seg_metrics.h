// seg_metrics.h: per-region segmentation metrics on binary volumes.
#pragma once

#include <torch/types.h>

namespace umrflow::metrics {

/// MONAI DiceMetric(ignore_empty=True): 2|P∩G| / (|P| + |G|); NaN when G is
/// empty, whatever P (the case is left out of that region's mean).
double dice_monai(const torch::Tensor& pred, const torch::Tensor& gt);

/// RFNet / mmFormer: (2|P∩G| + 1e-8) / (|P| + |G| + 1e-8), so an empty G with an
/// empty P scores 1 and with any prediction about 0.
double dice_rfnet(const torch::Tensor& pred, const torch::Tensor& gt);

/// 95th-percentile symmetric Hausdorff distance between the surfaces of two 3D
/// masks (medpy's hd95: surface = mask minus its 6-connected erosion, the
/// volume border counting as outside; distances Euclidean with `spacing`;
/// numpy's linear percentile of each direction, then the larger).
/// NaN when G is empty; the volume's diagonal when G is present and P empty.
double hd95(const torch::Tensor& pred, const torch::Tensor& gt, const std::vector<double>& spacing = {1, 1, 1});

/// Exact Euclidean distance from every voxel to the nearest `true` voxel of a
/// 3D bool volume (infinity when there is none), in units of `spacing`.
torch::Tensor distance_to(const torch::Tensor& mask, const std::vector<double>& spacing);

}  // namespace umrflow::metrics
