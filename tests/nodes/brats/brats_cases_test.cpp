#include <gtest/gtest.h>

#include <cmath>

#include <algorithm>
#include <filesystem>
#include <tuple>
#include <fstream>

#include "brats/brats.h"
#include "io/nifti.h"
#include "test_util.h"
#include "umrflow/doc.h"
#include "umrflow/node.h"
#include "umrflow/run.h"

namespace umrflow {

namespace fs = std::filesystem;

namespace {

/// Writes one case folder with the given per-modality volumes and label.
void write_case(const std::string& root, const std::string& id, const torch::Tensor& image, const torch::Tensor& label,
                const std::vector<std::string>& names = brats::default_modalities()) {
  fs::create_directories(root + "/" + id);
  for (std::size_t m = 0; m < names.size(); ++m)
    io::write_nifti(root + "/" + id + "/" + id + "_" + names[m] + ".nii.gz", image[m], io::diagonal_affine(1, 1, 1),
                    io::dtype::float32);
  io::write_nifti(root + "/" + id + "/" + id + "_seg.nii.gz", label, io::diagonal_affine(1, 1, 1), io::dtype::uint8);
}

std::unique_ptr<Node> make_source(const std::string& yaml) {
  Registry r = test::builtin_registry();
  Diagnostics d;
  const NodeSpec* spec = r.find("brats.cases");
  Params p = parse_params(parse_yaml(yaml, "p"), spec->params, {}, "brats.cases", d);
  EXPECT_TRUE(d.empty()) << d.str();
  return spec->create(p);
}

}  // namespace

// Labels {0,1,2,4} become TC = {1,4}, WT = {1,2,4}, ET = {4}, checked voxel by voxel.
TEST(Brats, LabelsToRegions) {
  torch::Tensor l = torch::tensor({0, 1, 2, 4, 4, 2}, torch::kFloat32);
  auto r = brats::labels_to_regions(l, {"TC", "WT", "ET"});
  EXPECT_TRUE(torch::equal(r[0], torch::tensor({0, 1, 0, 1, 1, 0}, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(r[1], torch::tensor({0, 1, 1, 1, 1, 1}, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(r[2], torch::tensor({0, 0, 0, 1, 1, 0}, torch::kUInt8)));
  auto other = brats::labels_to_regions(l, {"ET", "ED"});
  EXPECT_TRUE(torch::equal(other[1], torch::tensor({0, 0, 1, 0, 0, 1}, torch::kUInt8)));
  try {
    brats::labels_to_regions(torch::tensor({0, 5, 5, 1}), {"WT"});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("label value 5 in 2 voxel(s)"), std::string::npos) << e.what();
  }
}

// BraTS 2023 numbers the enhancing tumour 3: such a map read in that
// numbering gives the regions of the same map numbered 4 read in 2021's; each
// numbering refuses the other's ET value with a hint naming the setting.
TEST(Brats, Brats2023LabelsGiveTheSameRegions) {
  const torch::Tensor l4 = torch::tensor({0, 1, 2, 4, 4, 2}, torch::kUInt8), l3 = torch::tensor({0, 1, 2, 3, 3, 2}, torch::kUInt8);
  for (const std::vector<std::string>& regions : {std::vector<std::string>{"TC", "WT", "ET"}, {"NCR", "ED", "ET"}})
    EXPECT_TRUE(torch::equal(brats::labels_to_regions(l3, regions, brats::LabelNumbering::brats2023), brats::labels_to_regions(l4, regions)))
        << regions[0];
  EXPECT_EQ(brats::labels_to_regions(l3, {"ET"}, brats::LabelNumbering::brats2023).sum().item<int>(), 2);
  const std::vector<std::tuple<torch::Tensor, brats::LabelNumbering, std::string>> refused = {
      {l3, brats::LabelNumbering::brats2021, "label value 3 in 2 voxel(s); BraTS 2018-2021 labels are 0, 1, 2 and 4 (if this map "
                                             "numbers the enhancing tumour 3 as BraTS 2023 does, set label_numbering: brats2023)"},
      {l4, brats::LabelNumbering::brats2023, "label value 4 in 2 voxel(s); BraTS 2023 labels are 0, 1, 2 and 3 (if this map numbers"},
      {torch::tensor({0, 3, 4, 4}), brats::LabelNumbering::brats2023, "label value 4 in 2 voxel(s)"}};
  for (const auto& [map, numbering, message] : refused) {
    try {
      brats::labels_to_regions(map, {"WT"}, numbering);
      FAIL() << message;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
}

// A label map scaled by 0.5 (1 -> 0.5, 2 -> 1, 4 -> 2) or holding NaN is refused,
// not rounded into other classes; integral values stored as floats are fine.
TEST(Brats, FractionalLabelsAreRefused) {
  const torch::Tensor l = torch::tensor({0, 1, 2, 4, 4, 2}, torch::kFloat32);
  for (const torch::Tensor& bad : {l * 0.5, torch::tensor({0.0, std::nan(""), 1.0})}) {
    try {
      brats::labels_to_regions(bad, {"TC", "WT", "ET"});
      FAIL() << "no error";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("is not an integer"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(brats::labels_to_regions(l + 1e-6, {"WT"}));
}

// Cases are found in 2020 and 2018-style (HGG/LGG) layouts, sorted, in the
// requested modality order, and loaded with the right channels.
TEST(Brats, DiscoversAndLoadsCases) {
  test::TempDir dir;
  torch::Tensor image = torch::rand({4, 6, 5, 4}) + 1;
  torch::Tensor label = torch::zeros({6, 5, 4});
  label[2][2][2] = 4;
  label[3][2][2] = 2;
  write_case(dir.path() + "/HGG", "Brats18_B_1", image, label);
  write_case(dir.path(), "BraTS20_Training_001", image, label);
  auto cases = brats::discover_cases(dir.path(), {"t2", "flair"});
  ASSERT_EQ(cases.size(), 2u);
  EXPECT_EQ(cases[0].id, "BraTS20_Training_001");
  EXPECT_EQ(cases[1].id, "Brats18_B_1");
  EXPECT_NE(cases[0].modality_files[0].find("_t2.nii.gz"), std::string::npos);
  auto node = make_source("{root: " + dir.path() + ", modalities: [t2, flair]}");
  auto* src = dynamic_cast<SourceNode*>(node.get());
  ASSERT_EQ(src->size(), 2);
  Context ctx(1, 0, 0, "cases", true);
  Packet p = src->load(0, ctx);
  EXPECT_TRUE(torch::allclose(p.at("image")[0], image[3]));  // t2 first
  EXPECT_TRUE(torch::allclose(p.at("image")[1], image[0]));  // then flair
  EXPECT_EQ(p.at("label").sizes(), (c10::IntArrayRef{3, 6, 5, 4}));
  EXPECT_EQ(p.at("label")[1].sum().item<int>(), 2);  // WT
  EXPECT_EQ(p.at("label")[2].sum().item<int>(), 1);  // ET
  EXPECT_EQ(p.samples[0].id, "BraTS20_Training_001");
  EXPECT_EQ(p.samples[0].tags.at("shape"), (std::vector<std::int64_t>{6, 5, 4}));
}

// A case in BraTS 2023's naming (ID/ID-t2f.nii.gz ..., ID-seg with ET = 3) loads
// as the same case in the 2018-2021 naming does: the same channels in the
// requested order, the same regions.
TEST(Brats, LoadsTheBrats2023Layout) {
  test::TempDir dir;
  torch::Tensor image = torch::rand({4, 6, 5, 4}) + 1;
  torch::Tensor label = torch::zeros({6, 5, 4});
  label[2][2][2] = 4;
  label[2][3][2] = 1;
  label[3][2][2] = 2;
  write_case(dir.path() + "/old", "BraTS2021_00001", image, label);
  const std::string id = "BraTS-GLI-00001-000", folder = dir.path() + "/new/" + id;
  fs::create_directories(folder);
  const std::vector<std::string> names = {"t2f", "t1c", "t1n", "t2w"};  // flair, t1ce, t1, t2
  for (std::size_t m = 0; m < names.size(); ++m)
    io::write_nifti(folder + "/" + id + "-" + names[m] + ".nii.gz", image[m], io::diagonal_affine(1, 1, 1), io::dtype::float32);
  io::write_nifti(folder + "/" + id + "-seg.nii.gz", torch::where(label == 4, torch::full({}, 3.0), label), io::diagonal_affine(1, 1, 1),
                  io::dtype::uint8);
  const auto cases = brats::discover_cases(dir.path() + "/new", {"t1", "flair"});
  ASSERT_EQ(cases.size(), 1u);
  EXPECT_EQ(cases[0].modality_files[0], folder + "/" + id + "-t1n.nii.gz");
  EXPECT_EQ(cases[0].label_file, folder + "/" + id + "-seg.nii.gz");
  Context ctx(1, 0, 0, "cases", true);
  Packet loaded[2];
  for (int k = 0; k < 2; ++k) {
    auto node = make_source("{root: " + dir.path() + (k ? "/new" : "/old") + ", modalities: [t2, t1ce, flair, t1]}");
    auto* src = dynamic_cast<SourceNode*>(node.get());
    ASSERT_EQ(src->size(), 1);
    loaded[k] = src->load(0, ctx);
  }
  EXPECT_TRUE(torch::equal(loaded[1].at("image"), loaded[0].at("image")));
  EXPECT_TRUE(torch::allclose(loaded[1].at("image")[0], image[3]));  // t2 (t2w) first
  EXPECT_TRUE(torch::equal(loaded[1].at("label"), loaded[0].at("label")));
  EXPECT_EQ(loaded[1].at("label")[2].sum().item<int>(), 1);  // ET
  EXPECT_EQ(loaded[1].at("label")[0].sum().item<int>(), 2);  // TC
  // A case named as up to 2021 whose map numbers ET 3 loads with label_numbering: brats2023.
  io::write_nifti(dir.path() + "/old/BraTS2021_00001/BraTS2021_00001_seg.nii.gz", torch::where(label == 4, torch::full({}, 3.0), label),
                  io::diagonal_affine(1, 1, 1), io::dtype::uint8);
  for (const std::string numbering : {"auto", "brats2021"}) {
    auto node = make_source("{root: " + dir.path() + "/old, label_numbering: " + numbering + "}");
    EXPECT_THROW(dynamic_cast<SourceNode*>(node.get())->load(0, ctx), std::runtime_error) << numbering;
  }
  auto renumbered = make_source("{root: " + dir.path() + "/old, modalities: [t2, t1ce, flair, t1], label_numbering: brats2023}");
  EXPECT_TRUE(torch::equal(dynamic_cast<SourceNode*>(renumbered.get())->load(0, ctx).at("label"), loaded[0].at("label")));
  // A missing scan is named in both namings.
  fs::remove(folder + "/" + id + "-t2w.nii.gz");
  auto node = make_source("{root: " + dir.path() + "/new}");
  try {
    dynamic_cast<SourceNode*>(node.get())->load(0, ctx);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no " + id + "_t2.nii[.gz] or " + id + "-t2w.nii[.gz] in"), std::string::npos) << e.what();
  }
}

// Each class of bad case is an error naming the case and the file, and under
// `on_bad_case: skip` it is dropped and listed in the run directory instead.
TEST(Brats, BadCasesAreNamedOrSkipped) {
  test::TempDir dir;
  const std::string root = dir.path() + "/data";
  torch::Tensor image = torch::rand({4, 6, 6, 6}) + 1;
  torch::Tensor label = torch::zeros({6, 6, 6});
  write_case(root, "A_good", image, label);
  write_case(root, "B_shape", image, label);
  io::write_nifti(root + "/B_shape/B_shape_t1.nii.gz", torch::rand({6, 6, 5}), io::diagonal_affine(1, 1, 1), io::dtype::float32);
  write_case(root, "C_missing", image, label);
  fs::remove(root + "/C_missing/C_missing_t2.nii.gz");
  write_case(root, "D_nan", image, label);
  torch::Tensor nan = image[0].clone();
  nan[1][1][1] = std::numeric_limits<float>::quiet_NaN();
  io::write_nifti(root + "/D_nan/D_nan_flair.nii.gz", nan, io::diagonal_affine(1, 1, 1), io::dtype::float32);
  torch::Tensor bad_label = label.clone();
  bad_label[0][0][0] = 5;
  write_case(root, "E_label", image, bad_label);
  write_case(root, "F_truncated", image, label);
  const std::string t1ce = root + "/F_truncated/F_truncated_t1ce.nii.gz";
  fs::resize_file(t1ce, fs::file_size(t1ce) / 2);

  auto node = make_source("{root: " + root + "}");
  auto* src = dynamic_cast<SourceNode*>(node.get());
  ASSERT_EQ(src->size(), 6);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"B_shape", "has shape [6, 6, 5]"}, {"C_missing", "missing modality 't2'"}, {"D_nan", "1 NaN or infinite voxel"},
      {"E_label", "label value 5 in 1 voxel"}, {"F_truncated", "F_truncated_t1ce.nii.gz': cannot read the NIfTI file: truncated"}};
  Context ctx(1, 0, 0, "cases", true);
  EXPECT_NO_THROW(src->load(0, ctx));
  for (std::size_t i = 0; i < expected.size(); ++i) {
    try {
      src->load(static_cast<std::int64_t>(i + 1), ctx);
      FAIL() << expected[i].first;
    } catch (const SkipSample&) {
      FAIL() << "skipped under the fail policy";
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("case " + expected[i].first), std::string::npos) << m;
      EXPECT_NE(m.find(expected[i].second), std::string::npos) << m;
    }
  }
  // Under `skip`, a run drops the five bad cases and lists them.
  const std::string graph = dir.write("g.yaml", "umrflow: 1\ndata:\n  - {id: cases, type: brats.cases, root: " + root +
                                                    ", on_bad_case: skip}\n  - {id: batch, type: batch, in: cases}\n");
  Registry r = test::builtin_registry();
  RunOptions o;
  o.run_dir = dir.path() + "/run";
  o.quiet = true;
  RunSummary s = run_graph(build_graph(load_graph_doc(graph), graph, r), r, o);
  std::ifstream in(dir.path() + "/run/skipped.tsv");
  std::string header, line;
  std::getline(in, header);
  EXPECT_EQ(header, "epoch\tsample\tnode\treason");
  int rows = 0;
  while (std::getline(in, line)) {
    ++rows;
    EXPECT_NE(line.find("\tcases\tcase "), std::string::npos) << line;
  }
  EXPECT_EQ(rows, 5);
  EXPECT_NEAR(s.final_metrics.at("samples_per_s") * s.final_metrics.at("time_s"), 1.0, 1e-6);
}

// Phantoms are written in the BraTS layout, deterministic in their seed, with
// lesions of BraTS-like size in millimetres, the tumour parts where they show
// (oedema bright on FLAIR, enhancing rim bright on T1ce over a dark core), and
// a different overall intensity scale per case.
TEST(Brats, PhantomsLookLikeBrats) {
  test::TempDir dir;
  brats::PhantomOptions o;
  o.cases = 3;
  o.size = 48;
  o.seed = 5;
  o.out = dir.path() + "/a";
  auto ids = brats::write_phantoms(o);
  ASSERT_EQ(ids, (std::vector<std::string>{"Phantom_001", "Phantom_002", "Phantom_003"}));
  auto cases = brats::discover_cases(o.out, brats::default_modalities());
  ASSERT_EQ(cases.size(), 3u);
  auto mean_where = [](const torch::Tensor& img, const torch::Tensor& mask) { return img.masked_select(mask).mean().item<double>(); };
  int with_label[5] = {0, 0, 0, 0, 0};
  std::vector<double> brain_means;
  for (const auto& c : cases) {
    io::Volume seg = io::read_nifti(c.label_file);
    EXPECT_EQ(seg.data.sizes(), (c10::IntArrayRef{48, 48, 31}));
    const double voxel_cm3 = 5.0 * 5.0 * 5.0 / 1000.0;
    const double wt_cm3 = (seg.data > 0).sum().item<double>() * voxel_cm3;
    EXPECT_GT(wt_cm3, 5.0) << c.id;  // BraTS whole tumours span about 10 to 300 cm^3
    EXPECT_LT(wt_cm3, 400.0) << c.id;
    for (int v : {1, 2, 4}) with_label[v] += (seg.data == v).any().item<bool>();
    io::Volume flair = io::read_nifti(c.modality_files[0]);
    io::Volume t1ce = io::read_nifti(c.modality_files[1]);
    const auto brain = flair.data > 0;
    brain_means.push_back(mean_where(t1ce.data, brain));
    EXPECT_GT(mean_where(flair.data, seg.data == 2), 1.3 * mean_where(flair.data, brain & (seg.data == 0))) << c.id;
    if ((seg.data == 4).any().item<bool>() && (seg.data == 1).any().item<bool>())
      EXPECT_GT(mean_where(t1ce.data, seg.data == 4), 1.3 * mean_where(t1ce.data, seg.data == 1)) << c.id;
  }
  EXPECT_EQ(with_label[2], 3);
  EXPECT_GE(with_label[1], 2);
  EXPECT_GE(with_label[4], 2);
  // z-scoring is needed: the overall intensity differs between cases.
  EXPECT_GT(*std::max_element(brain_means.begin(), brain_means.end()) / *std::min_element(brain_means.begin(), brain_means.end()), 1.1);
  // The procedural head (used when mricron-data is absent) gives the same kind of case.
  o.out = dir.path() + "/procedural";
  o.procedural = true;
  o.cases = 1;
  brats::write_phantoms(o);
  io::Volume pseg = io::read_nifti(o.out + "/Phantom_001/Phantom_001_seg.nii.gz");
  EXPECT_TRUE((pseg.data == 2).any().item<bool>());
  EXPECT_TRUE((pseg.data == 1).any().item<bool>() || (pseg.data == 4).any().item<bool>());
  EXPECT_GT((io::read_nifti(o.out + "/Phantom_001/Phantom_001_t1.nii.gz").data > 0).sum().item<int>(), 48 * 48 * 31 / 4);
  o.procedural = false;
  o.cases = 2;
  o.out = dir.path() + "/b";
  brats::write_phantoms(o);
  EXPECT_TRUE(torch::equal(io::read_nifti(o.out + "/Phantom_002/Phantom_002_t2.nii.gz").data,
                           io::read_nifti(dir.path() + "/a/Phantom_002/Phantom_002_t2.nii.gz").data));
}

// A template that cannot serve as a brain (two volumes, a NaN, nothing above
// zero) is an error naming the file and why, before any case is written (it
// failed inside torch with a backtrace); the same head as one volume serves.
TEST(Brats, UnusableTemplateIsAnErrorNamingIt) {
  test::TempDir dir;
  const io::Affine eye = io::diagonal_affine(1, 1, 1);
  torch::Tensor head = torch::zeros({12, 12, 10});
  head.slice(0, 2, 10).slice(1, 2, 10).slice(2, 2, 8).fill_(1.0);
  torch::Tensor nan = head.clone();
  nan[5][5][5] = std::nan("");
  const std::vector<std::pair<std::string, torch::Tensor>> bad = {
      {"two.nii.gz", torch::stack({head, head}, 3)}, {"nan.nii.gz", nan}, {"zero.nii.gz", torch::zeros({12, 12, 10})}};
  const std::vector<std::string> why = {"it holds a 4D image", "1 voxel(s) are NaN or infinite", "no voxel is above zero"};
  brats::PhantomOptions o;
  o.cases = 1;
  o.size = 16;
  for (std::size_t k = 0; k < bad.size(); ++k) {
    o.template_path = dir.path() + "/" + bad[k].first;
    io::write_nifti(o.template_path, bad[k].second, eye, io::dtype::float32);
    o.out = dir.path() + "/out" + std::to_string(k);
    try {
      brats::write_phantoms(o);
      ADD_FAILURE() << bad[k].first << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("template '" + o.template_path + "': " + why[k]), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(o.out + "/Phantom_001")) << bad[k].first;
  }
  o.template_path = dir.path() + "/one.nii.gz";
  io::write_nifti(o.template_path, head, eye, io::dtype::float32);
  o.out = dir.path() + "/ok";
  EXPECT_EQ(brats::write_phantoms(o).size(), 1u);
}

}  // namespace umrflow
