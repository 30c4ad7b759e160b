// Synthetic BraTS-like cases ("phantoms"): brain anatomy, a three-part tumour,
// and four MRI contrasts that each show the tumour partly, as real scans do.
//
// Anatomy: the skull-stripped ch2 template (Debian mricron-data) under a random
// smooth deformation, with tissue classes by intensity (it is T1-weighted:
// WM > GM > CSF); without the template, a procedural head of nested ellipsoids
// with ventricles. Tumour: a deformed sphere with necrotic core (1), enhancing
// rim (4) and oedema (2). Contrasts by tissue (relative units):
//
//            CSF   GM    WM    oedema necrosis enhancing
//   T1       0.25  0.55  0.75  0.50   0.35     0.55      faint dark lesion
//   T1ce     0.25  0.55  0.75  0.52   0.20     1.00      bright rim, dark core
//   T2       1.00  0.65  0.45  0.85   0.95     0.70      bright oedema and core
//   FLAIR    0.10  0.55  0.45  0.95   0.60     0.75      bright oedema, dark CSF
//
// then a smooth multiplicative bias field per modality and Gaussian noise.
// FLAIR/T2 find the whole tumour but not its parts; T1ce finds core and rim but
// not the oedema; so every region needs more than one modality.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <filesystem>
#include <random>

#include "brats/brats.h"
#include "io/nifti.h"

namespace umrflow::brats {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

std::string default_template_path() { return "/usr/share/mricron/templates/ch2bet.nii.gz"; }

namespace {

/// A smooth random field in [-1, 1]: coarse noise upsampled trilinearly.
torch::Tensor smooth_field(const std::vector<std::int64_t>& shape, std::int64_t coarse, torch::Generator& gen) {
  torch::Tensor c = torch::rand({1, 1, coarse, coarse, coarse}, gen) * 2 - 1;
  return F::interpolate(c, F::InterpolateFuncOptions().size(shape).mode(torch::kTrilinear).align_corners(true))[0][0];
}

/// Normalised coordinates in [-1, 1] per axis, each (X, Y, Z).
std::vector<torch::Tensor> grid(const std::vector<std::int64_t>& shape) {
  auto axes = torch::meshgrid({torch::linspace(-1, 1, shape[0]), torch::linspace(-1, 1, shape[1]), torch::linspace(-1, 1, shape[2])}, "ij");
  return {axes[0], axes[1], axes[2]};
}

/// Tissue probabilities (CSF, GM, WM), each (X, Y, Z), and a brain mask.
struct Anatomy {
  torch::Tensor csf, gm, wm, brain;
};

Anatomy procedural_head(const std::vector<std::int64_t>& shape, torch::Generator& gen) {
  auto g = grid(shape);
  const auto wobble = 0.06 * smooth_field(shape, 4, gen);
  auto r = [&](double a, double b, double c) { return (g[0] / a).pow(2) + (g[1] / b).pow(2) + (g[2] / c).pow(2) + wobble; };
  const auto outer = r(0.78, 0.9, 0.85);
  const auto brain = outer < 1.0;
  const auto wm = r(0.62, 0.74, 0.68) < 1.0;
  const auto vent = ((g[0].abs() - 0.12) / 0.08).pow(2) + (g[1] / 0.3).pow(2) + ((g[2] - 0.1) / 0.25).pow(2) < 1.0;
  Anatomy a;
  a.brain = brain;
  a.csf = ((outer > 0.9) & brain) | vent;
  a.wm = wm & ~a.csf;
  a.gm = brain & ~a.wm & ~a.csf;
  return {a.csf.to(torch::kFloat32), a.gm.to(torch::kFloat32), a.wm.to(torch::kFloat32), a.brain};
}

Anatomy template_head(const std::string& path, const std::vector<std::int64_t>& shape, torch::Generator& gen) {
  torch::Tensor t = io::read_nifti(path).data;
  t = t / t.max();
  // Random smooth deformation: displace the sampling grid by a coarse field.
  auto g = grid(shape);
  std::vector<torch::Tensor> coords;
  for (int axis = 2; axis >= 0; --axis) coords.push_back(g[axis] + 0.04 * smooth_field(shape, 4, gen));
  torch::Tensor sample_grid = torch::stack(coords, -1).unsqueeze(0);  // (1, X, Y, Z, 3) as (z, y, x)
  torch::Tensor warped = F::grid_sample(t.unsqueeze(0).unsqueeze(0), sample_grid,
                                        F::GridSampleFuncOptions().mode(torch::kBilinear).align_corners(true))[0][0];
  const auto brain = warped > 0.05;
  const auto v = warped.masked_select(brain);
  const double q1 = v.quantile(0.18).item<double>(), q2 = v.quantile(0.55).item<double>();
  Anatomy a;
  a.brain = brain;
  a.csf = (brain & (warped < q1)).to(torch::kFloat32);
  a.gm = (brain & (warped >= q1) & (warped < q2)).to(torch::kFloat32);
  a.wm = (brain & (warped >= q2)).to(torch::kFloat32);
  return a;
}

/// Label volume with {0, 1, 2, 4} for one random tumour inside the brain.
torch::Tensor tumour(const Anatomy& a, const std::vector<std::int64_t>& shape, torch::Generator& gen, std::mt19937_64& rng) {
  auto g = grid(shape);
  std::uniform_real_distribution<double> u(0, 1);
  // Centre: a random brain voxel away from the edge.
  const auto inner = torch::nonzero(a.brain & (g[0].abs() < 0.45) & (g[1].abs() < 0.5) & (g[2].abs() < 0.45));
  const auto pick = inner[static_cast<std::int64_t>(u(rng) * inner.size(0)) % inner.size(0)];
  std::vector<double> c;
  for (int i = 0; i < 3; ++i) c.push_back(-1.0 + 2.0 * pick[i].item<double>() / (shape[i] - 1));
  const double radius = 0.14 + 0.16 * u(rng);
  const auto d = ((g[0] - c[0]).pow(2) + (g[1] - c[1]).pow(2) * (0.7 + 0.6 * u(rng)) + (g[2] - c[2]).pow(2)).sqrt() / radius *
                 (1.0 + 0.25 * smooth_field(shape, 5, gen));
  const double core = 0.25 + 0.25 * u(rng), rim = core + 0.2 + 0.15 * u(rng), oedema = rim + 0.6 + 0.8 * u(rng);
  torch::Tensor label = torch::zeros(shape, torch::kUInt8);
  label.masked_fill_((d < oedema) & a.brain, 2);
  label.masked_fill_((d < rim) & a.brain, 4);
  label.masked_fill_((d < core) & a.brain, 1);
  return label;
}

}  // namespace

std::vector<std::string> write_phantoms(const PhantomOptions& o, const std::function<void(std::int64_t, std::int64_t)>& progress) {
  if (o.cases < 1 || o.size < 16) throw std::invalid_argument("phantoms need at least 1 case and size >= 16");
  const std::vector<std::int64_t> shape = {o.size, o.size, std::max<std::int64_t>(8, o.size * 155 / 240)};
  const std::string tpl = o.template_path.empty() ? default_template_path() : o.template_path;
  const bool use_template = !o.procedural && fs::exists(tpl);
  if (!o.template_path.empty() && !use_template) throw std::runtime_error("template '" + o.template_path + "' does not exist");
  const io::Affine affine = io::diagonal_affine(240.0 / shape[0], 240.0 / shape[1], 155.0 / shape[2]);
  struct Contrast {
    const char* name;
    double csf, gm, wm, oedema, necrosis, enhancing;
  };
  static const Contrast contrasts[] = {{"t1", 0.25, 0.55, 0.75, 0.50, 0.35, 0.55},
                                       {"t1ce", 0.25, 0.55, 0.75, 0.52, 0.20, 1.00},
                                       {"t2", 1.00, 0.65, 0.45, 0.85, 0.95, 0.70},
                                       {"flair", 0.10, 0.55, 0.45, 0.95, 0.60, 0.75}};
  std::vector<std::string> ids;
  for (std::int64_t i = 0; i < o.cases; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "Phantom_%03lld", static_cast<long long>(i + 1));
    const std::uint64_t seed = o.seed * 1000003ull + static_cast<std::uint64_t>(i);
    torch::Generator gen = at::detail::createCPUGenerator(seed);
    std::mt19937_64 rng(seed);
    const Anatomy a = use_template ? template_head(tpl, shape, gen) : procedural_head(shape, gen);
    const torch::Tensor label = tumour(a, shape, gen, rng);
    const auto l = label.to(torch::kInt64);
    const fs::path folder = fs::path(o.out) / id;
    fs::create_directories(folder);
    for (const auto& c : contrasts) {
      torch::Tensor img = c.csf * a.csf + c.gm * a.gm + c.wm * a.wm;
      img = torch::where(l == 2, torch::full_like(img, c.oedema), img);
      img = torch::where(l == 1, torch::full_like(img, c.necrosis), img);
      img = torch::where(l == 4, torch::full_like(img, c.enhancing), img);
      const auto bias = torch::exp(0.15 * smooth_field(shape, 3, gen));
      img = (img * bias + 0.03 * torch::randn(shape, gen)).clamp_min(0.0) * a.brain.to(torch::kFloat32);
      io::write_nifti((folder / (std::string(id) + "_" + c.name + ".nii.gz")).string(), img * 1000.0, affine, io::dtype::int16);
    }
    io::write_nifti((folder / (std::string(id) + "_seg.nii.gz")).string(), label, affine, io::dtype::uint8);
    ids.push_back(id);
    if (progress) progress(i + 1, o.cases);
  }
  return ids;
}

}  // namespace umrflow::brats
