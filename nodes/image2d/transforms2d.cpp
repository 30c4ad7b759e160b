// The 2D augmentations of the SOD recipe (../shared/reference/unimrseg.md,
// section 3): resize, rotation, border crop, colour jitter, per-channel
// normalisation. Each
// acts on a sample's `image` (C, H, W) float and, when present, its `label`
// (C, H, W): the same geometry for both, the label resampled bilinearly (a
// saliency mask in [0, 1]) or by nearest neighbour (class indices).
// Horizontal flip is `tensor.random_flip` with axes [2].
#include "image2d/image2d_nodes.h"

#include <torch/torch.h>

#include <cmath>
#include <random>

namespace umrflow::image2d {

namespace F = torch::nn::functional;

namespace {

const char* const kLabelMode = "label_mode";
std::vector<std::string> label_modes() { return {"bilinear", "nearest"}; }

/// A (C, H, W) tensor resampled by `grid` (1, H', W', 2), bilinear or nearest, zeros outside.
torch::Tensor sample_grid(const torch::Tensor& t, const torch::Tensor& grid, bool nearest) {
  const torch::Tensor x = t.to(torch::kFloat32).unsqueeze(0);
  auto options = F::GridSampleFuncOptions().padding_mode(torch::kZeros).align_corners(false);
  if (nearest) options.mode(torch::kNearest);
  else options.mode(torch::kBilinear);
  return F::grid_sample(x, grid, options).squeeze(0).to(t.scalar_type());
}

void check_image(const Packet& s, const char* node) {
  const torch::Tensor& x = s.at("image");
  if (x.dim() != 3) throw std::runtime_error(std::string(node) + ": `image` must be (C, H, W), got " + c10::str(x.sizes()));
  if (s.has("label") && (s.at("label").dim() != 3 || s.at("label").sizes().slice(1) != x.sizes().slice(1)))
    throw std::runtime_error(std::string(node) + ": `label` " + c10::str(s.at("label").sizes()) + " does not match `image` " +
                             c10::str(x.sizes()) + " in height and width");
}

}  // namespace

void Resize2d::declare(Declaration<Resize2d>& d) {
  d.type("image2d.resize", NodeKind::sample,
         "Resizes `image` bilinearly (align_corners false, no antialiasing: torch's interpolate) and `label` as label_mode says.");
  d.input({"in", {{"image", 3, "(C, H, W) float"}}, "the sample (and its `label`, if any)"});
  d.param(&Resize2d::size_, param::integers("size", std::vector<std::int64_t>{256, 256}, "output height and width").length(2).min(1));
  d.param(&Resize2d::label_mode_, param::choice(kLabelMode, "bilinear", {"bilinear", "nearest", "keep"},
                                                 "bilinear for masks, nearest for class maps, keep: the label keeps its own size "
                                                 "(evaluation at the image's size, as SSLSOD and ESANet score; the report resizes "
                                                 "the prediction back; put this node last, batches of 1)"));
}

void Resize2d::apply(Packet& s, Context&) {
  check_image(s, "image2d.resize");
  const auto resize = [&](const torch::Tensor& t, bool nearest) {
    auto options = F::InterpolateFuncOptions().size(std::vector<std::int64_t>{size_[0], size_[1]});
    if (nearest) options.mode(torch::kNearest);
    else options.mode(torch::kBilinear).align_corners(false);
    return F::interpolate(t.to(torch::kFloat32).unsqueeze(0), options).squeeze(0).to(t.scalar_type());
  };
  s.tensors["image"] = resize(s.at("image"), false);
  if (s.has("label") && label_mode_ != "keep") s.tensors["label"] = resize(s.at("label"), label_mode_ == "nearest");
}

void RandomRotate2d::declare(Declaration<RandomRotate2d>& d) {
  d.type("image2d.random_rotate", NodeKind::sample,
         "With probability p, rotates `image` and `label` about the centre by an angle drawn uniformly from `degrees` "
         "(counter-clockwise as seen; zeros where the rotated image does not reach).");
  d.input({"in", {{"image", 3, "(C, H, W) float"}}, "the sample (and its `label`, if any)"});
  d.param(&RandomRotate2d::degrees_, param::numbers("degrees", std::vector<double>{-15.0, 15.0}, "lowest and highest angle").length(2));
  d.param(&RandomRotate2d::p_, param::number("p", 0.2, "probability of rotating").range(0.0, 1.0));
  d.param(&RandomRotate2d::label_mode_, param::choice(kLabelMode, "bilinear", label_modes(), "bilinear for masks, nearest for class maps"));
}

void RandomRotate2d::apply(Packet& s, Context& ctx) {
  check_image(s, "image2d.random_rotate");
  std::uniform_real_distribution<double> u(0.0, 1.0);
  if (u(ctx.engine()) >= p_) return;
  const double angle = degrees_[0] + (degrees_[1] - degrees_[0]) * u(ctx.engine());
  const double a = angle * M_PI / 180.0, c = std::cos(a), si = std::sin(a);
  const double h = static_cast<double>(s.at("image").size(1)), w = static_cast<double>(s.at("image").size(2));
  // Output pixel (x, y) in normalised coordinates takes the input at the
  // inverse rotation, in pixel units so that non-square images turn rigidly.
  const torch::Tensor theta = torch::tensor({{c, -si * h / w, 0.0}, {si * w / h, c, 0.0}}, torch::kFloat32).unsqueeze(0);
  const torch::Tensor grid =
      F::affine_grid(theta, {1, 1, static_cast<std::int64_t>(h), static_cast<std::int64_t>(w)}, /*align_corners=*/false);
  s.tensors["image"] = sample_grid(s.at("image"), grid, false);
  if (s.has("label")) s.tensors["label"] = sample_grid(s.at("label"), grid, label_mode_ == "nearest");
}

void BorderCrop2d::declare(Declaration<BorderCrop2d>& d) {
  d.type("image2d.border_crop", NodeKind::sample,
         "Crops a centred window whose width and height are drawn uniformly from [size - border, size - 1] (the SOD "
         "recipe's border clipping); the same window for `image` and `label`.");
  d.input({"in", {{"image", 3, "(C, H, W)"}}, "the sample (and its `label`, if any)"});
  d.param(&BorderCrop2d::border_, param::integer("border", 30, "most pixels removed per axis").min(1));
}

void BorderCrop2d::apply(Packet& s, Context& ctx) {
  check_image(s, "image2d.border_crop");
  const std::int64_t h = s.at("image").size(1), w = s.at("image").size(2);
  const auto draw = [&](std::int64_t n) {
    std::uniform_int_distribution<std::int64_t> u(std::max<std::int64_t>(1, n - border_), std::max<std::int64_t>(1, n - 1));
    return u(ctx.engine());
  };
  const std::int64_t ch = draw(h), cw = draw(w);
  for (const char* key : {"image", "label"})
    if (s.has(key)) s.tensors[key] = s.at(key).narrow(1, (h - ch) / 2, ch).narrow(2, (w - cw) / 2, cw).contiguous();
}

void ColorJitter2d::declare(Declaration<ColorJitter2d>& d) {
  d.type("image2d.color_jitter", NodeKind::sample,
         "Brightness, then contrast, then saturation of the R, G, B channels of `image` (values in [0, 1]), each by a factor "
         "drawn uniformly from its range (torchvision's adjust_* formulas, results clamped to [0, 1]); other channels and "
         "`label` are left alone.");
  d.input({"in", {{"image", 3, "(C, H, W) float in [0, 1], C >= 3, R, G, B first"}}, "the sample"});
  d.param(&ColorJitter2d::brightness_,
          param::numbers("brightness", std::vector<double>{0.8, 1.2}, "range of the factor x -> f x").length(2).min(0.0));
  d.param(&ColorJitter2d::contrast_,
          param::numbers("contrast", std::vector<double>{0.8, 1.2}, "range of the factor blending with the mean gray value").length(2).min(0.0));
  d.param(&ColorJitter2d::saturation_,
          param::numbers("saturation", std::vector<double>{0.8, 1.2}, "range of the factor blending with the pixel's gray").length(2).min(0.0));
}

void ColorJitter2d::apply(Packet& s, Context& ctx) {
  check_image(s, "image2d.color_jitter");
  torch::Tensor x = s.at("image");
  if (x.size(0) < 3) throw std::runtime_error("image2d.color_jitter: `image` has " + std::to_string(x.size(0)) + " channels, R, G, B needed");
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const auto draw = [&](const std::vector<double>& r) { return r[0] + (r[1] - r[0]) * u(ctx.engine()); };
  const double fb = draw(brightness_), fc = draw(contrast_), fs = draw(saturation_);
  // The luma weights of torchvision's rgb_to_grayscale.
  const auto gray = [](const torch::Tensor& rgb) { return 0.2989 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]; };
  torch::Tensor rgb = (x.narrow(0, 0, 3).to(torch::kFloat32) * fb).clamp(0, 1);
  rgb = (fc * rgb + (1 - fc) * gray(rgb).mean()).clamp(0, 1);
  rgb = (fs * rgb + (1 - fs) * gray(rgb).unsqueeze(0)).clamp(0, 1);
  torch::Tensor out = x.to(torch::kFloat32).clone();
  out.narrow(0, 0, 3).copy_(rgb);
  s.tensors["image"] = out;
}

void Normalize2d::declare(Declaration<Normalize2d>& d) {
  d.type("image2d.normalize", NodeKind::sample,
         "(x - mean) / std for the first channels of `image`, one mean and std per channel (ImageNet's for R, G, B by "
         "default); later channels are left as they are.");
  d.input({"in", {{"image", 3, "(C, H, W) float"}}, "the sample"});
  d.param(&Normalize2d::mean_, param::numbers("mean", std::vector<double>{0.485, 0.456, 0.406}, "per-channel means"));
  d.param(&Normalize2d::std_, param::numbers("std", std::vector<double>{0.229, 0.224, 0.225}, "per-channel standard deviations").min(1e-12));
}

void Normalize2d::apply(Packet& s, Context&) {
  check_image(s, "image2d.normalize");
  if (mean_.size() != std_.size())
    throw std::runtime_error("image2d.normalize: " + std::to_string(mean_.size()) + " means but " + std::to_string(std_.size()) +
                             " standard deviations; give one of each per channel");
  torch::Tensor x = s.at("image").to(torch::kFloat32).clone();
  if (static_cast<std::int64_t>(mean_.size()) > x.size(0))
    throw std::runtime_error("image2d.normalize: " + std::to_string(mean_.size()) + " means for an image of " + std::to_string(x.size(0)) +
                             " channels");
  for (std::size_t c = 0; c < mean_.size(); ++c) x[static_cast<std::int64_t>(c)].sub_(mean_[c]).div_(std_[c]);
  s.tensors["image"] = x;
}

}  // namespace umrflow::image2d
