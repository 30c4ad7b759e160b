// sod_metrics.h: metrics of the 2D tasks. Salient object detection (RGB-D and
// RGB-T SOD): MAE, S-measure, F-measure and E-measure on one saliency map;
// RGB-D semantic segmentation (SUN-RGBD, 37 classes): a confusion matrix with
// mIoU and pixel accuracy.
//
// References, and the names used for them below:
//  - PySOD: PySODMetrics (lartpang/PySODMetrics, py_sod_metrics/sod_metrics.py
//    and utils.py at ac5b1fc7), the Python port of Fan et al.'s MATLAB code
//    that most SOD papers are scored with; its current version handles the
//    divisions by zero as the MATLAB code does (N-1+eps, a 1-pixel std of 0).
//  - SSLSOD: utils_downstream/saliency_metric.py and test_score.py of
//    Xiaoqi-Zhao-DLUT/SSLSOD at 99821999, the configuration the UniMRSeg
//    README points to for the 2D tasks (../shared/reference/unimrseg.md §3).
//  - ESANet (TUI-NICR/ESANet src/confusion_matrix.py, eval.py) and ACNet
//    (anheidelonghu/ACNet utils/utils.py, ACNet_eval_nyuv2.py) for SUN-RGBD.
//
// Inputs of the SOD functions: `pred` and `gt` are 2D tensors (H, W) of the
// same non-empty shape, any dtype and device; `pred` must lie in [0, 1] and
// `gt` in [0, 1] (bool is fine); anything else throws std::invalid_argument
// naming the function. The ground truth is binarised as gt > 0.5 (SSLSOD's
// test_score.py divides by the max first and then does the same; PySOD's
// uint8 gt > 128 differs only for a value of exactly 128/255). All arithmetic is in float64 on the CPU.
// The functions do not rescale `pred`: both references min-max normalise a
// saved map first, which `minmax_normalize` does when the caller wants it.
//
// Dataset numbers are not means of per-image maxima: see SodAccumulator.
#pragma once

#include <torch/types.h>

#include <array>
#include <cstdint>

namespace umrflow::metrics {

/// The references' preparation of a saved prediction map: (p - min) / (max -
/// min) when max > min, the map unchanged (as float64) when it is constant
/// (PySOD prepare_data after /255; SSLSOD test_score.py 33-36).
torch::Tensor minmax_normalize(const torch::Tensor& pred);

/// Mean absolute error between `pred` and the binarised `gt`, mean(|p - g|).
double mae(const torch::Tensor& pred, const torch::Tensor& gt);

/// Which reference's arithmetic the S-measure follows. Both share the special
/// cases, the object/region split and the centroid rounding; they differ in:
///
///   quantity                    pysod (MATLAB)          sslsod
///   std in the object term      ddof 1 (0 for 1 pixel)   ddof 0
///   eps in both terms           2^-52 (MATLAB eps)       1e-8
///   SSIM variances              /(N - 1 + eps)           /N (np.var)
///   SSIM covariance             /(N - 1 + eps)           /(N - 1)
///   weight of the last quadrant 1 - the other three      its own area / HW
///   negative totals             clamped to 0             kept
///   a perfect map (pred == gt)  1                        above 1: each mixed
///                                                        quadrant scores N/(N-1)
///
/// On 256x256 maps with a sizeable object they differ by about 3e-5 (more for
/// tiny objects or quadrants, and wherever pysod clamps).
/// sslsod is the default: the released UniMRSeg code names SSLSOD's
/// configuration for the 2D tasks (../shared/reference/unimrseg.md, section 3).
enum class SmeasureStyle { pysod, sslsod };

/// S-measure (Fan et al., ICCV 2017), alpha weighting object against region:
///   mean(gt) == 0 -> 1 - mean(pred);  mean(gt) == 1 -> mean(pred);
///   otherwise alpha * object + (1 - alpha) * region, then (pysod) max(0, .).
///
/// object = u * O(pred[gt]) + (1 - u) * O((1 - pred)[!gt]), u = mean(gt),
///   O(v) = 2 mean(v) / (mean(v)^2 + 1 + std(v) + eps).
///
/// region: the map is cut at the ground-truth centroid. The centroid is the
///   mean row and mean column of the foreground pixels (0-based), each rounded
///   half to even (numpy's round and Python's round: 0.5 -> 0, 1.5 -> 2,
///   2.5 -> 2; MATLAB rounds half away from zero, so its split can differ by
///   one pixel on exact halves), then plus 1 (cy, cx), as both references do
///   to mimic MATLAB's inclusive 1:X. The quadrants are rows [0, cy) or
///   [cy, H) times columns [0, cx) or [cx, W); each is weighted by its area
///   over H*W and scored with
///     a = 4 x y sxy,  b = (x^2 + y^2)(sx + sy),
///     ssim = a / (b + eps) if a != 0;  1 if a == 0 and b == 0;  0 otherwise,
///   x, y the quadrant means of pred and gt, sx, sy, sxy the (co)variances
///   (divisors in the table above). Scores of the four quadrants are summed in
///   the order top-left, top-right, bottom-left, bottom-right.
///
/// All of it is float64; SSLSOD computes a quadrant's gt mean and variance in
/// float32 (np.float32(gt)), which moves its score by less than 1e-7.
///
/// Two deviations, both where the references return NaN (0/0):
///  - a quadrant of one pixel has covariance 0 in sslsod as well (SSLSOD
///    divides 0 by N - 1 = 0); this is MATLAB's and PySOD's value;
///  - an empty quadrant (the centroid rounded onto the last row or column,
///    cy == H or cx == W) is left out; its weight is 0, while PySOD and
///    SSLSOD (and, by the same arithmetic, the MATLAB code) take the mean
///    of an empty slice and turn the whole score into NaN.
double s_measure(const torch::Tensor& pred, const torch::Tensor& gt, SmeasureStyle style = SmeasureStyle::sslsod,
                 double alpha = 0.5);

/// A score at each of the 256 thresholds. The map is quantised as PySOD does,
/// level = uint8(pred * 255) (truncation: 0.5 -> 127, 1.0 -> 255), and
/// at[t] scores the binary map level >= t, t = 0..255; at t = 0 every pixel is
/// foreground. PySOD stores the same values in the reverse order (its element
/// i is threshold 255 - i), which changes neither max nor mean.
struct ThresholdCurve {
  std::array<double, 256> at{};
  double max() const;
  double mean() const;
};

/// F-measure with beta^2 = `beta2` (0.3, which PySOD calls beta), per
/// threshold from the cumulative histograms of the levels inside and outside
/// the ground truth (PySOD Fmeasure.cal_pr):
///   TP = foreground pixels with level >= t,  P = all pixels with level >= t,
///   precision = TP / P (0 when P == 0),  recall = TP / max(|gt|, 1),
///   F = (1 + b2) precision recall / (b2 precision + recall), 0 when the
///   numerator is 0. An empty ground truth therefore scores F = 0 everywhere.
/// `adaptive` binarises the float map at min(2 mean(pred), 1) with >= and
/// scores the same way, 0 when it has no true positive (cal_adaptive_fm).
///
/// For one image `f.max()` is max F and `f.mean()` mean F. SSLSOD's cal_fm
/// differs (255 bins that merge levels 254 and 255, max F from the dataset
/// means of precision and recall, empty ground truths as zero rows, and a
/// "meanF" that is the adaptive F); it is not reproduced.
struct FmeasureCurves {
  ThresholdCurve precision, recall, f;
  double adaptive = 0;
};
FmeasureCurves f_measure(const torch::Tensor& pred, const torch::Tensor& gt, double beta2 = 0.3);

/// E-measure (Fan et al., IJCAI 2018) per threshold, from the pixel counts of
/// each (prediction, ground truth) combination as PySOD does
/// (cal_em_with_cumsumhistogram), with N = H*W and G = |gt|:
///   G == 0: sum = pixels predicted background;  G == N: sum = pixels predicted
///   foreground;  otherwise, with mp = (pixels predicted foreground) / N and
///   mg = G / N, each pixel's demeaned values a = [pred fg] - mp and
///   b = [gt fg] - mg give align = 2ab / (a^2 + b^2 + eps) and
///   enhanced = (align + 1)^2 / 4, summed over the pixels;
///   E = sum / (N - 1 + eps).
/// The divisor N - 1 is MATLAB's: a perfect map scores N / (N - 1), slightly
/// above 1, and so does an all-zero map of an empty ground truth at every
/// threshold above 0 (at t = 0 every pixel counts as foreground: E = 0).
/// `adaptive` binarises the float map at min(2 mean(pred), 1) with >=.
/// SSLSOD's cal_em computes only this adaptive E, per pixel in MATLAB's form
/// with eps 1e-8 instead of 2^-52; otherwise the same value.
struct EmeasureCurves {
  ThresholdCurve e;
  double adaptive = 0;
};
EmeasureCurves e_measure(const torch::Tensor& pred, const torch::Tensor& gt);

/// Dataset scores in PySOD's way (the SOD tables of papers): MAE, S-measure
/// and the adaptive F and E are means over images; the F and E curves are
/// averaged over images per threshold first, and max F / mean F (max E /
/// mean E) are the maximum and the mean of that mean curve, so max F is
/// never above, and usually below, the mean of the per-image maxima. NaN when
/// no image was added.
struct SodScores {
  std::int64_t images = 0;
  double mae = 0, s_measure = 0;
  double max_f = 0, mean_f = 0, adaptive_f = 0;
  double max_e = 0, mean_e = 0, adaptive_e = 0;
};

class SodAccumulator {
 public:
  explicit SodAccumulator(SmeasureStyle style = SmeasureStyle::sslsod) : style_(style) {}
  /// The scores of one image that are its own (the curves are only averaged).
  struct ImageScores {
    double s_measure, mae;
  };
  /// Scores one image (same contract as the functions above) and returns its
  /// S-measure and MAE.
  ImageScores add(const torch::Tensor& pred, const torch::Tensor& gt);
  SodScores result() const;

 private:
  SmeasureStyle style_;
  std::int64_t n_ = 0;
  double mae_ = 0, sm_ = 0, adaptive_f_ = 0, adaptive_e_ = 0;
  ThresholdCurve f_, e_;  // sums over images
};

/// `pred` (N, C, h, w) logits resized bilinearly (align_corners false) to the
/// height and width of `label` (B, 1, H, W), or `pred` itself when they
/// already agree: how SSLSOD and ESANet score a network's output at the
/// ground truth's own size (image2d.resize with label_mode: keep).
torch::Tensor at_label_size(const torch::Tensor& pred, const torch::Tensor& label);

/// Returns `pred` (a network's output, any shape) when every value is finite;
/// else throws std::runtime_error counting the NaN and infinite values, so
/// that no score or label map is computed from an overflowed network (weights
/// that pass `verify` but are far too large, a BatchNorm variance below 0).
/// `what` names the tensor in the message.
const torch::Tensor& require_finite_output(const torch::Tensor& pred, const std::string& what);

/// Semantic segmentation (SUN-RGBD). The defaults are the raw SUN-RGBD labels
/// that ESANet and ACNet read: 0 is unlabelled and ignored, 1..37 are the
/// classes, so class = label - 1 and the network's output index 0..36 is
/// compared with it. A data layer that stores 0..36 with 255 as void uses
/// {37, 255, 0}.
struct ConfusionOptions {
  std::int64_t num_classes = 37;
  std::int64_t ignore_label = 0;  ///< ground-truth value left out, before the offset
  std::int64_t gt_offset = 1;     ///< class = ground-truth value - gt_offset
};

/// Confusion matrix summed over a data set (ESANet sums it over the whole
/// test set, ACNet sums intersections and unions; both then divide once).
/// Pixels whose ground truth is the ignore label are dropped with whatever
/// was predicted there. Any other ground truth outside the classes, or a
/// prediction outside 0..num_classes-1, throws std::invalid_argument.
/// A copy has its own counts (the tensor is cloned), so copies of one matrix
/// count independently.
class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(ConfusionOptions options = {});
  ConfusionMatrix(const ConfusionMatrix& other) : options_(other.options_), matrix_(other.matrix_.clone()) {}
  ConfusionMatrix& operator=(const ConfusionMatrix& other) {
    if (this != &other) {
      options_ = other.options_;
      matrix_ = other.matrix_.clone();
    }
    return *this;
  }
  ConfusionMatrix(ConfusionMatrix&&) = default;
  ConfusionMatrix& operator=(ConfusionMatrix&&) = default;
  /// `pred` (class indices) and `gt` (labels), integer-valued, same shape.
  void add(const torch::Tensor& pred, const torch::Tensor& gt);
  /// Adds another matrix of the same options (ESANet sums per-camera ones).
  void merge(const ConfusionMatrix& other);
  /// (C, C) int64; row = ground-truth class, column = predicted class.
  const torch::Tensor& matrix() const { return matrix_; }

  /// Per class TP / (TP + FP + FN) in float64 (ESANet rounds the union to
  /// float32 first, a relative difference below 1e-7); 0 for a class that is
  /// in neither ground truth nor prediction (ESANet's nan_to_num; ACNet's
  /// 0 / (0 + 1e-10)).
  torch::Tensor iou() const;
  /// Mean of iou() over all num_classes, absent classes counting 0: what
  /// ESANet and ACNet report. On the full SUN-RGBD test set every class
  /// occurs, so it equals miou_present().
  double miou() const;
  /// Mean over the classes present in ground truth or prediction (union > 0),
  /// as mmsegmentation's nanmean does; NaN when nothing was counted. Use it
  /// for small or partial sets, where absent classes would drag miou() down.
  double miou_present() const;
  /// Correct pixels over counted (non-ignored) pixels (ACNet's accuracy
  /// summed over images); NaN when nothing was counted.
  double pixel_accuracy() const;

 private:
  ConfusionOptions options_;
  torch::Tensor matrix_;
};

}  // namespace umrflow::metrics
