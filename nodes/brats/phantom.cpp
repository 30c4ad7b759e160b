// Synthetic BraTS-like cases ("phantoms"): brain anatomy, glioma-like lesions
// measured in millimetres, and four MRI contrasts that each show the lesion
// partly, as real scans do. Everything is rendered on a grid twice as fine as
// the output and averaged down, so boundaries have partial-volume intensities
// and labels are the majority of their eight sub-voxels.
//
// Anatomy: the skull-stripped ch2 template (Debian mricron-data) under a random
// smooth deformation, with tissue classes by intensity (it is T1-weighted:
// WM > GM > CSF); without the template, a procedural head of nested ellipsoids
// with ventricles.
//
// Lesions: one focus, or two (one case in five). A focus has a tumour core made
// of 2-4 overlapping ellipsoidal lobes (mean radius 9-20 mm) with a noisy
// boundary; inside it an enhancing rim 3-7 mm thick (varying along the
// boundary) around necrosis; one focus in ten does not enhance (its core is all
// label 1, like a lower-grade tumour). Oedema reaches 6-22 mm beyond the core,
// further along white matter than through grey matter (fingers), never into
// CSF. Labels: necrosis / non-enhancing core 1, oedema 2, enhancing 4.
//
// Contrasts by tissue (relative units; each jittered per case):
//
//            CSF   GM    WM    oedema necrosis enhancing
//   T1       0.25  0.55  0.75  0.60   0.35     0.60      faint dark core only
//   T1ce     0.25  0.55  0.75  0.62   0.22     1.05      bright rim, dark core
//   T2       1.00  0.65  0.45  0.85   0.95     0.70      bright oedema and core
//   FLAIR    0.10  0.55  0.45  0.95   0.65     0.78      bright oedema, dark CSF
//
// then per case and modality: texture inside the lesion, a smooth
// multiplicative bias field of random strength, a random gamma, Rician noise
// of random level and a random overall gain, so absolute values carry nothing.
// FLAIR/T2 find the whole tumour but not its parts; T1ce finds core and rim but
// not the oedema; T1 alone finds little: every region needs the right sequence.
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

/// torch::quantile (linear interpolation) for any size: libtorch refuses more
/// than 2^24 values (BraTS-size phantoms have more brain voxels), so those are
/// sorted here instead.
double quantile_of(const torch::Tensor& v, double q) {
  if (v.numel() <= (std::int64_t{1} << 24)) return v.quantile(q).item<double>();
  const torch::Tensor s = std::get<0>(v.flatten().sort());
  const double pos = q * static_cast<double>(s.numel() - 1);
  const auto lo = static_cast<std::int64_t>(pos);
  const auto hi = std::min<std::int64_t>(lo + 1, s.numel() - 1);
  const double a = s[lo].item<double>(), b = s[hi].item<double>();
  return a + (b - a) * (pos - static_cast<double>(lo));
}

/// The template's intensities scaled to max 1; a file that cannot serve as a
/// brain (not one 3D volume, values not finite, no positive voxel) is an
/// error naming it.
torch::Tensor read_template(const std::string& path) {
  torch::Tensor t = io::read_nifti(path).data;
  while (t.dim() > 3 && t.size(-1) == 1) t = t.squeeze(-1);
  const auto refuse = [&](const std::string& why) {
    throw std::runtime_error("template '" + path + "': " + why + "; give a skull-stripped 3D brain scan (e.g. " + default_template_path() +
                             ") or --procedural");
  };
  if (t.dim() != 3) refuse("it holds a " + std::to_string(t.dim()) + "D image, not one 3D volume");
  if (t.numel() == 0) refuse("it holds no voxels");
  t = t.to(torch::kFloat32);
  if (const auto bad = (~torch::isfinite(t)).sum().item<std::int64_t>(); bad > 0)
    refuse(std::to_string(bad) + " voxel(s) are NaN or infinite");
  const double top = t.max().item<double>();
  if (!(top > 0)) refuse("no voxel is above zero");
  return t / top;
}

Anatomy template_head(const torch::Tensor& t, const std::string& path, const std::vector<std::int64_t>& shape, torch::Generator& gen) {
  // Random smooth deformation: displace the sampling grid by a coarse field.
  auto g = grid(shape);
  std::vector<torch::Tensor> coords;
  for (int axis = 2; axis >= 0; --axis) coords.push_back(g[axis] + 0.04 * smooth_field(shape, 4, gen));
  torch::Tensor sample_grid = torch::stack(coords, -1).unsqueeze(0);  // (1, X, Y, Z, 3) as (z, y, x)
  torch::Tensor warped = F::grid_sample(t.unsqueeze(0).unsqueeze(0), sample_grid,
                                        F::GridSampleFuncOptions().mode(torch::kBilinear).align_corners(true))[0][0];
  const auto brain = warped > 0.05;
  const auto v = warped.masked_select(brain);
  if (v.numel() < 2)
    throw std::runtime_error("template '" + path + "': no brain is left where it is resampled (voxels above 5% of its maximum); "
                             "give a skull-stripped 3D brain scan or --procedural");
  const double q1 = quantile_of(v, 0.18), q2 = quantile_of(v, 0.55);
  Anatomy a;
  a.brain = brain;
  a.csf = (brain & (warped < q1)).to(torch::kFloat32);
  a.gm = (brain & (warped >= q1) & (warped < q2)).to(torch::kFloat32);
  a.wm = (brain & (warped >= q2)).to(torch::kFloat32);
  return a;
}

/// Coordinates in millimetres from the volume's centre, each (X, Y, Z).
std::vector<torch::Tensor> grid_mm(const std::vector<std::int64_t>& shape, const std::vector<double>& spacing) {
  std::vector<torch::Tensor> axes;
  for (int i = 0; i < 3; ++i)
    axes.push_back((torch::arange(shape[i], torch::kFloat32) + 0.5 - shape[i] / 2.0) * spacing[i]);
  auto g = torch::meshgrid({axes[0], axes[1], axes[2]}, "ij");
  return {g[0], g[1], g[2]};
}

/// A smooth random field in [-1, 1] whose bumps are about `scale_mm` apart.
torch::Tensor field_mm(const std::vector<std::int64_t>& shape, const std::vector<double>& spacing, double scale_mm,
                       torch::Generator& gen) {
  const double extent = std::max(shape[0] * spacing[0], shape[2] * spacing[2]);
  return smooth_field(shape, std::max<std::int64_t>(3, static_cast<std::int64_t>(extent / scale_mm) + 1), gen);
}

/// Adds one focus to `label` ({0, 1, 2, 4}); `scale` shrinks a secondary focus.
void add_focus(torch::Tensor& label, const Anatomy& a, const std::vector<torch::Tensor>& g, const std::vector<double>& centre,
               double scale, const std::vector<std::int64_t>& shape, const std::vector<double>& spacing, torch::Generator& gen,
               std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> n(0, 1);
  const double rc = (12.0 + 12.0 * u(rng)) * scale;  // mean core radius, mm
  const int lobes = 2 + static_cast<int>(u(rng) * 3);
  torch::Tensor q = torch::full(shape, 1e9);
  double mean_r = 0;
  for (int l = 0; l < lobes; ++l) {
    std::vector<double> dir = {n(rng), n(rng), n(rng)};
    const double norm = std::sqrt(dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]) + 1e-9;
    const double off = l == 0 ? 0.0 : (0.3 + 0.4 * u(rng)) * rc;
    torch::Tensor ql = torch::zeros(shape);
    double lobe_r = 0;
    for (int i = 0; i < 3; ++i) {
      const double r = rc * (0.55 + 0.45 * u(rng));
      lobe_r += r / 3;
      ql += ((g[i] - (centre[i] + off * dir[i] / norm)) / r).pow(2);
    }
    mean_r += lobe_r / lobes;
    q = torch::minimum(q, ql.sqrt());
  }
  q = q * (1.0 + 0.15 * field_mm(shape, spacing, 12.0, gen));
  const torch::Tensor depth = (1.0 - q) * mean_r;  // mm inside the core boundary (negative outside)
  const torch::Tensor core = (q < 1.0) & a.brain;
  const double rim_mm = 3.0 + 5.0 * u(rng);
  const torch::Tensor rim = depth < rim_mm * (1.0 + 0.35 * field_mm(shape, spacing, 10.0, gen));
  const bool enhancing = u(rng) >= 0.1;
  const double oedema_mm = (5.0 + 13.0 * u(rng)) * std::sqrt(scale);
  const torch::Tensor reach = oedema_mm * (0.35 + 1.3 * a.wm) * (1.0 + 0.5 * field_mm(shape, spacing, 8.0, gen));
  const torch::Tensor oedema = (-depth < reach) & a.brain & (a.csf < 0.5);
  label.masked_fill_(oedema & (label == 0), 2);
  if (enhancing) {
    label.masked_fill_(core & rim, 4);
    label.masked_fill_(core & ~rim, 1);
  } else {
    label.masked_fill_(core, 1);
  }
}

/// Label volume with {0, 1, 2, 4}: one focus, or two in one case of five.
torch::Tensor lesions(const Anatomy& a, const std::vector<std::int64_t>& shape, const std::vector<double>& spacing,
                      torch::Generator& gen, std::mt19937_64& rng) {
  const auto g = grid_mm(shape, spacing);
  std::uniform_real_distribution<double> u(0, 1);
  // Centres: brain voxels at least 25 mm inside the brain's box, preferring white matter.
  auto pick = [&](const torch::Tensor& where) {
    const auto idx = torch::nonzero(where);
    const auto p = idx[static_cast<std::int64_t>(u(rng) * idx.size(0)) % idx.size(0)];
    std::vector<double> c;
    for (int i = 0; i < 3; ++i) c.push_back(g[i].index({p[0], p[1], p[2]}).item<double>());
    return c;
  };
  torch::Tensor inner = a.brain & (a.wm > 0.5);
  for (int i = 0; i < 3; ++i) {
    const auto coord = g[i].masked_select(a.brain);
    inner = inner & (g[i] > coord.min() + 25.0) & (g[i] < coord.max() - 25.0);
  }
  if (inner.sum().item<std::int64_t>() == 0) inner = a.brain;
  torch::Tensor label = torch::zeros(shape, torch::kUInt8);
  const auto first = pick(inner);
  add_focus(label, a, g, first, 1.0, shape, spacing, gen, rng);
  if (u(rng) < 0.2) {
    const auto d = ((g[0] - first[0]).pow(2) + (g[1] - first[1]).pow(2) + (g[2] - first[2]).pow(2)).sqrt();
    torch::Tensor near = inner & (d > 25.0) & (d < 50.0);
    if (near.sum().item<std::int64_t>() > 0) add_focus(label, a, g, pick(near), 0.5 + 0.3 * u(rng), shape, spacing, gen, rng);
  }
  return label;
}

}  // namespace

std::vector<std::string> write_phantoms(const PhantomOptions& o, const std::function<void(std::int64_t, std::int64_t)>& progress) {
  if (o.cases < 1 || o.size < 16) throw std::invalid_argument("phantoms need at least 1 case and size >= 16");
  const std::vector<std::int64_t> shape = {o.size, o.size, std::max<std::int64_t>(8, o.size * 155 / 240)};
  const std::vector<std::int64_t> fine = {2 * shape[0], 2 * shape[1], 2 * shape[2]};  // rendering grid
  const std::vector<double> spacing = {240.0 / shape[0], 240.0 / shape[1], 155.0 / shape[2]};
  const std::vector<double> fine_spacing = {spacing[0] / 2, spacing[1] / 2, spacing[2] / 2};
  const std::string tpl = o.template_path.empty() ? default_template_path() : o.template_path;
  const bool use_template = !o.procedural && fs::exists(tpl);
  if (!o.template_path.empty() && !use_template) throw std::runtime_error("template '" + o.template_path + "' does not exist");
  const torch::Tensor template_volume = use_template ? read_template(tpl) : torch::Tensor();
  const io::Affine affine = io::diagonal_affine(spacing[0], spacing[1], spacing[2]);
  struct Contrast {
    const char* name;
    double csf, gm, wm, oedema, necrosis, enhancing;
  };
  static const Contrast contrasts[] = {{"t1", 0.25, 0.55, 0.75, 0.60, 0.35, 0.60},
                                       {"t1ce", 0.25, 0.55, 0.75, 0.62, 0.22, 1.05},
                                       {"t2", 1.00, 0.65, 0.45, 0.85, 0.95, 0.70},
                                       {"flair", 0.10, 0.55, 0.45, 0.95, 0.65, 0.78}};
  auto down = [](const torch::Tensor& t) { return F::avg_pool3d(t.unsqueeze(0).unsqueeze(0), F::AvgPool3dFuncOptions(2))[0][0]; };
  std::vector<std::string> ids;
  for (std::int64_t i = 0; i < o.cases; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "Phantom_%03lld", static_cast<long long>(i + 1));
    const std::uint64_t seed = o.seed * 1000003ull + static_cast<std::uint64_t>(i);
    torch::Generator gen = at::detail::createCPUGenerator(seed);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    std::normal_distribution<double> jitter(0, 1);
    const Anatomy a = use_template ? template_head(template_volume, tpl, fine, gen) : procedural_head(fine, gen);
    const torch::Tensor fine_label = lesions(a, fine, fine_spacing, gen, rng).to(torch::kInt64);
    // Labels: the majority of the eight sub-voxels (ties go to the first of 0, 2, 1, 4).
    const torch::Tensor brain = down(a.brain.to(torch::kFloat32)) > 0.5;
    const std::int64_t values[] = {0, 2, 1, 4};
    std::vector<torch::Tensor> share;
    for (auto v : values) share.push_back(down((fine_label == v).to(torch::kFloat32)));
    const torch::Tensor winner = torch::stack(share).argmax(0);
    torch::Tensor label = torch::zeros(shape, torch::kUInt8);
    for (int k = 1; k < 4; ++k) label.masked_fill_((winner == k) & brain, values[k]);
    const torch::Tensor texture = 1.0 + 0.08 * field_mm(fine, fine_spacing, 6.0, gen);
    const fs::path folder = fs::path(o.out) / id;
    fs::create_directories(folder);
    for (const auto& c : contrasts) {
      auto v = [&](double base, double sd) { return std::max(0.02, base + sd * jitter(rng)); };
      torch::Tensor img = v(c.csf, 0.03) * a.csf + v(c.gm, 0.03) * a.gm + v(c.wm, 0.03) * a.wm;
      const torch::Tensor lesion = fine_label > 0;
      img = torch::where(fine_label == 2, torch::full_like(img, v(c.oedema, 0.05)), img);
      img = torch::where(fine_label == 1, torch::full_like(img, v(c.necrosis, 0.05)), img);
      img = torch::where(fine_label == 4, torch::full_like(img, v(c.enhancing, 0.05)), img);
      img = torch::where(lesion, img * texture, img) * a.brain.to(torch::kFloat32);
      img = down(img);  // partial volume
      img = img * torch::exp((0.1 + 0.2 * u(rng)) * smooth_field(shape, 3, gen));
      img = img.clamp_min(0.0).pow(0.85 + 0.3 * u(rng));
      const double sigma = 0.015 + 0.035 * u(rng);
      img = ((img + sigma * torch::randn(shape, gen)).pow(2) + (sigma * torch::randn(shape, gen)).pow(2)).sqrt();  // Rician
      img = img * brain.to(torch::kFloat32) * (0.5 + 1.5 * u(rng));
      io::write_nifti((folder / (std::string(id) + "_" + c.name + ".nii.gz")).string(), img * 1000.0, affine, io::dtype::int16);
    }
    io::write_nifti((folder / (std::string(id) + "_seg.nii.gz")).string(), label, affine, io::dtype::uint8);
    ids.push_back(id);
    if (progress) progress(i + 1, o.cases);
  }
  return ids;
}

}  // namespace umrflow::brats
