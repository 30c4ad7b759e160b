#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "brats/brats.h"
#include "brats/predict.h"
#include "io/nifti.h"
#include "io/state_dict.h"
#include "test_paths.h"
#include "test_util.h"

namespace umrflow {

namespace fs = std::filesystem;

namespace {

const std::string kBin = UMRFLOW_BINARY;
const std::string kGraphs = std::string(UMRFLOW_SOURCE_DIR) + "/graphs/phantoms/";
const char* const kPython = "/usr/bin/python3";

std::string scan(const std::string& root, const std::string& id, const std::string& modality) {
  return root + "/" + id + "/" + id + "_" + modality + ".nii.gz";
}

/// The validation case of test::phantom_root().
std::string val_case() {
  std::ifstream in(test::phantom_root() + "/split.yaml");
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.rfind("val:", 0) == 0) section = "val";
    else if (line.rfind("  - ", 0) == 0 && section == "val") return line.substr(4);
    else if (!line.empty() && line[0] != ' ') section.clear();
  }
  return "";
}

/// A stage-3 checkpoint of the tiny network on the phantoms (one epoch from
/// random weights), made once per test process.
const std::string& tiny_checkpoint() {
  static test::TempDir dir;
  static const std::string ck = [] {
    const std::string r = test::phantom_root();
    std::string out;
    const int rc = test::run_command(kBin + " run " + kGraphs + "stage3.yaml --quiet --set data.cases.root=" + r +
                                         " --set data.cases.split=" + r + "/split.yaml --set 'modules.net.widths=[4, 8, 8, 8]'"
                                         " --set 'data.crop.size=[16, 16, 16]' --set modules.net.init=null --set train.validate=null"
                                         " --set train.epochs=1 --out " + dir.path() + "/s3 2>&1",
                                     &out);
    if (rc != 0) throw std::runtime_error("cannot train the tiny network: " + out);
    return dir.path() + "/s3/last.pt";
  }();
  return ck;
}

std::string predict_line(const std::string& id, const std::vector<std::string>& modalities, const std::string& out,
                         const std::string& threshold = "0.5") {
  std::string line = kBin + " predict --quiet --weights " + tiny_checkpoint() + " --window 16,16,16 --threshold " + threshold + " --out " + out;
  for (const auto& m : modalities) line += " --" + m + " " + scan(test::phantom_root(), id, m);
  return line;
}

torch::Tensor voxels(const std::string& path) { return io::read_nifti(path).data; }

/// A threshold that splits the probabilities near their median, midway across
/// a gap of at least 1e-4 between neighbouring values, so that rounding
/// differences between two computations of them cannot move a voxel across it.
std::string splitting_threshold(const torch::Tensor& prob) {
  const torch::Tensor u = std::get<0>(at::_unique(prob.flatten(), /*sorted=*/true)).to(torch::kFloat64);
  const std::int64_t n = u.numel(), mid = n / 2;
  for (std::int64_t k = 0; k < n; ++k)
    for (std::int64_t i : {mid + k, mid - k})
      if (i >= 0 && i + 1 < n && u[i + 1].item<double>() - u[i].item<double>() > 1e-4) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.9g", (u[i].item<double>() + u[i + 1].item<double>()) / 2);
        return buf;
      }
  return "0.5";
}

}  // namespace

// Label maps survive labels -> regions -> labels for every region set that
// names the three tumour classes, voxel by voxel.
TEST(BratsPredict, RegionsToLabelsInvertsLabelsToRegions) {
  const torch::Tensor values = torch::tensor({0, 1, 2, 4}, torch::kFloat32);
  const torch::Tensor label = values.index({torch::randint(0, 4, {6, 5, 4}, torch::kLong)});
  for (const std::vector<std::string>& regions :
       {std::vector<std::string>{"TC", "WT", "ET"}, {"ET", "TC", "WT"}, {"NCR", "ED", "ET"}, {"WT", "NCR", "ET"}}) {
    const torch::Tensor back = brats::regions_to_labels(brats::labels_to_regions(label, regions), regions);
    EXPECT_TRUE(torch::equal(back, label.to(torch::kUInt8))) << regions[0];
  }
  EXPECT_THROW(brats::regions_to_labels(torch::zeros({1, 2, 2}), {"XX"}), std::invalid_argument);
  // BraTS 2023's numbering (ET = 3) round-trips too.
  const torch::Tensor label3 = torch::where(label == 4, torch::full({}, 3.0), label).to(torch::kUInt8);
  const std::vector<std::string> regions = {"TC", "WT", "ET"};
  EXPECT_TRUE(torch::equal(
      brats::regions_to_labels(brats::labels_to_regions(label3, regions, brats::LabelNumbering::brats2023), regions, 3), label3));
  EXPECT_THROW(brats::regions_to_labels(torch::zeros({1, 2, 2}), {"ET"}, 5), std::invalid_argument);
}

// A predict list written and read back keeps every case; a bad entry is refused at its line.
TEST(BratsPredict, ListRoundTripsAndRefusesBadEntries) {
  test::TempDir dir;
  brats::PredictList list;
  list.modalities = {"flair", "t1ce", "t1", "t2"};
  list.cases.push_back({"a b", {"/x/a \"flair\".nii.gz", "", "/x/t1.nii", ""}, "/out/a.nii.gz"});
  list.cases.push_back({"c", {"", "", "", "/x/c_t2.nii.gz"}, "/out/c.nii.gz"});
  brats::write_predict_list(dir.path() + "/l.yaml", list);
  const brats::PredictList back = brats::read_predict_list(dir.path() + "/l.yaml");
  ASSERT_EQ(back.cases.size(), 2u);
  EXPECT_EQ(back.modalities, list.modalities);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back.cases[i].id, list.cases[i].id);
    EXPECT_EQ(back.cases[i].files, list.cases[i].files);
    EXPECT_EQ(back.cases[i].out, list.cases[i].out);
  }
  const std::string head = "modalities: [flair, t1]\ncases:\n";
  auto error_of = [&](const std::string& text) {
    try {
      brats::read_predict_list(dir.write("bad.yaml", text));
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of(head + "  - {id: a, out: o.nii.gz, dwi: x.nii.gz}\n").find("bad.yaml:3: unknown modality 'dwi'"), std::string::npos);
  EXPECT_NE(error_of(head + "  - {id: a, out: o.nii.gz}\n").find("names no modality file"), std::string::npos);
  EXPECT_NE(error_of(head + "  - {id: a, out: o.NII.GZ, t1: x}\n").find("must end in .nii.gz or .nii"), std::string::npos);
  EXPECT_NE(error_of(head + "  - {id: a, out: o.nii.gz, t1: x}\n  - {id: a, out: p.nii.gz, t1: y}\n").find("listed twice"),
            std::string::npos);
}

// Cases are found in the BraTS layout and in a flat folder named by a pattern;
// a case may lack modalities.
TEST(BratsPredict, FindsCasesByPattern) {
  const std::string r = test::phantom_root();
  const auto cases = brats::find_predict_cases(r, "{id}_{modality}.nii.gz", brats::default_modalities(), "/o");
  ASSERT_EQ(cases.size(), 3u);
  for (const auto& c : cases) {
    EXPECT_EQ(c.out, "/o/" + c.id + ".nii.gz");
    for (std::size_t m = 0; m < 4; ++m) EXPECT_EQ(c.files[m], scan(r, c.id, brats::default_modalities()[m]));
  }
  test::TempDir flat;
  fs::copy_file(scan(r, cases[0].id, "t2"), flat.path() + "/T2-p1.nii.gz");
  fs::copy_file(scan(r, cases[0].id, "flair"), flat.path() + "/FLAIR-p1.nii.gz");
  fs::copy_file(scan(r, cases[1].id, "flair"), flat.path() + "/FLAIR-p2.nii.gz");
  const auto found = brats::find_predict_cases(flat.path(), "{modality}-{id}.nii.gz", {"FLAIR", "T1", "T2"}, "/o");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].id, "p1");
  EXPECT_EQ(found[0].files, (std::vector<std::string>{flat.path() + "/FLAIR-p1.nii.gz", "", flat.path() + "/T2-p1.nii.gz"}));
  EXPECT_EQ(found[1].files[2], "");
  // BraTS 2023's names: t2f, t1c, t1n, t2w are found as flair, t1ce, t1, t2.
  test::TempDir named;
  fs::copy_file(scan(r, cases[0].id, "t1ce"), named.path() + "/BraTS-GLI-00002-000-t1c.nii.gz");
  fs::copy_file(scan(r, cases[0].id, "t2"), named.path() + "/BraTS-GLI-00002-000-t2w.nii.gz");
  fs::copy_file(scan(r, cases[0].id, "t1"), named.path() + "/BraTS-GLI-00002-000-t1n.nii.gz");
  const auto renamed = brats::find_predict_cases(named.path(), "{id}-{modality}.nii.gz", brats::default_modalities(), "/o");
  ASSERT_EQ(renamed.size(), 1u);
  EXPECT_EQ(renamed[0].id, "BraTS-GLI-00002-000");
  EXPECT_EQ(renamed[0].files, (std::vector<std::string>{"", named.path() + "/BraTS-GLI-00002-000-t1c.nii.gz",
                                                         named.path() + "/BraTS-GLI-00002-000-t1n.nii.gz",
                                                         named.path() + "/BraTS-GLI-00002-000-t2w.nii.gz"}));
  EXPECT_THROW(brats::find_predict_cases(flat.path(), "{id}.nii.gz", {"FLAIR"}, "/o"), std::runtime_error);
  EXPECT_THROW(brats::find_predict_cases(flat.path(), "{id}_{modality}.nii.gz", {"FLAIR"}, "/o"), std::runtime_error);
}

// `predict` on a phantom case equals the evaluation graph's saved prediction
// voxel for voxel, with all four modalities and with a subset; the map opens in
// nibabel on the input's grid with only BraTS labels.
TEST(Predict, EqualsTheEvaluationsPrediction) {
  test::TempDir dir;
  const std::string d = dir.path(), r = test::phantom_root(), id = val_case();
  ASSERT_FALSE(id.empty());
  std::string log;
  // The tiny network is barely trained: a threshold at the median of its ET
  // probabilities (the region painted last) gives maps with more than one
  // label, which makes the comparison telling.
  ASSERT_EQ(test::run_command(predict_line(id, {"flair", "t1ce", "t1", "t2"}, d + "/probe.nii.gz") + " --probabilities 2>&1", &log), 0)
      << log;
  const std::string t = splitting_threshold(voxels(d + "/probe_ET.nii.gz"));
  ASSERT_EQ(test::run_command(kBin + " run " + kGraphs + "eval.yaml --set step.report.threshold=" + t + " --quiet --set data.cases.root=" + r + " --set data.cases.split=" + r +
                                  "/split.yaml --set data.cases.subset=val --set 'modules.net.widths=[4, 8, 8, 8]' --set modules.net.init.from=" +
                                  tiny_checkpoint() + " --set 'step.seg.window=[16, 16, 16]' --set step.report.hd95=false"
                                  " --set step.report.predictions=true --out " + d + "/ev 2>&1",
                              &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(predict_line(id, {"flair", "t1ce", "t1", "t2"}, d + "/full.nii.gz", t) + " 2>&1", &log), 0) << log;
  const torch::Tensor full = voxels(d + "/full.nii.gz"), expected = voxels(d + "/ev/predictions/" + id + "_Flair-T1ce-T1-T2.nii.gz");
  EXPECT_GT(std::get<0>(at::_unique(full)).numel(), 1) << "a constant prediction would make this comparison weak";
  EXPECT_TRUE(torch::equal(full, expected));

  ASSERT_EQ(test::run_command(predict_line(id, {"flair", "t1ce"}, d + "/sub.nii.gz", t) + " 2>&1", &log), 0) << log;
  EXPECT_TRUE(torch::equal(voxels(d + "/sub.nii.gz"), voxels(d + "/ev/predictions/" + id + "_Flair-T1ce.nii.gz")));
  ASSERT_EQ(test::run_command(predict_line(id, {"t2"}, d + "/t2.nii.gz", t) + " --window-batch 3 2>&1", &log), 0) << log;
  EXPECT_TRUE(torch::equal(voxels(d + "/t2.nii.gz"), voxels(d + "/ev/predictions/" + id + "_T2.nii.gz")));

  const std::string check = std::string(kPython) + " -c \"import nibabel as nib, numpy as np; p = nib.load('" + d +
                            "/full.nii.gz'); i = nib.load('" + scan(r, id, "flair") +
                            "'); v = np.asarray(p.dataobj); print(p.shape == i.shape, np.allclose(p.affine, i.affine), "
                            "set(np.unique(v).tolist()) <= {0, 1, 2, 4}, v.dtype)\"";
  if (test::run_command(std::string(kPython) + " -c 'import nibabel' 2>/dev/null", nullptr) == 0) {
    std::string out;
    ASSERT_EQ(test::run_command(check + " 2>&1", &out), 0) << out;
    EXPECT_EQ(out, "True True True uint8\n");
  }
}

// A folder of cases gives one label map per case; with --probabilities also
// each region's map; the foreground crop keeps the input's grid.
TEST(Predict, FolderOfCases) {
  test::TempDir dir;
  const std::string d = dir.path(), r = test::phantom_root();
  std::string log;
  ASSERT_EQ(test::run_command(kBin + " predict --weights " + tiny_checkpoint() + " --window 16,16,16 --input " + r + " --output " + d +
                                  "/seg --crop foreground --probabilities 2>&1",
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("3 case(s) in"), std::string::npos) << log;
  for (const auto& c : brats::find_predict_cases(r, "{id}_{modality}.nii.gz", brats::default_modalities(), d + "/seg")) {
    ASSERT_TRUE(fs::exists(c.out)) << c.out;
    EXPECT_EQ(voxels(c.out).sizes(), voxels(c.files[0]).sizes());
    const torch::Tensor wt = voxels(d + "/seg/" + c.id + "_WT.nii.gz"), tc = voxels(d + "/seg/" + c.id + "_TC.nii.gz"),
                        et = voxels(d + "/seg/" + c.id + "_ET.nii.gz"), labels = voxels(c.out);
    EXPECT_TRUE(((wt >= 0) & (wt <= 1)).all().item<bool>());
    // The map follows the probabilities: ET above one half is 4, any region above it is labelled.
    EXPECT_TRUE(torch::equal(et > 0.5, labels == 4));
    EXPECT_TRUE(torch::equal((wt > 0.5) | (tc > 0.5) | (et > 0.5), labels > 0));
  }
  std::size_t partial = 0;
  for (const auto& f : fs::directory_iterator(d + "/seg")) partial += f.path().filename().string().rfind(".umrflow", 0) == 0;
  EXPECT_EQ(partial, 0u);
}

// --et-label 3 writes BraTS 2023's numbering: the map of --et-label 4 with 4
// relabelled 3, nothing else moved; scans named as from 2023 (--scan t2f=...)
// are taken as the modality they alias.
TEST(Predict, EtLabelThreeWritesBrats2023Numbering) {
  test::TempDir dir;
  const std::string d = dir.path(), r = test::phantom_root(), id = val_case();
  std::string log;
  ASSERT_EQ(test::run_command(predict_line(id, {"flair", "t1ce", "t1", "t2"}, d + "/probe.nii.gz") + " --probabilities 2>&1", &log), 0)
      << log;
  const std::string t = splitting_threshold(voxels(d + "/probe_ET.nii.gz"));
  ASSERT_EQ(test::run_command(predict_line(id, {"flair", "t1ce", "t1", "t2"}, d + "/four.nii.gz", t) + " 2>&1", &log), 0) << log;
  std::string line = kBin + " predict --quiet --weights " + tiny_checkpoint() + " --window 16,16,16 --threshold " + t + " --out " + d +
                     "/three.nii.gz --et-label 3";
  for (const auto& [name, m] : std::vector<std::pair<std::string, std::string>>{{"t2f", "flair"}, {"t1c", "t1ce"}, {"t1n", "t1"}, {"t2w", "t2"}})
    line += " --scan " + name + "=" + scan(r, id, m);
  ASSERT_EQ(test::run_command(line + " 2>&1", &log), 0) << log;
  const torch::Tensor four = voxels(d + "/four.nii.gz"), three = voxels(d + "/three.nii.gz");
  ASSERT_TRUE((four == 4).any().item<bool>()) << "no ET voxel: the comparison would not see the label";
  EXPECT_TRUE(torch::equal(three, torch::where(four == 4, torch::full({}, 3.0, four.options()), four)));
  EXPECT_NE(test::run_command(predict_line(id, {"flair"}, d + "/x.nii.gz") + " --et-label 5 2>&1", &log), 0);
  EXPECT_NE(log.find("et-label"), std::string::npos) << log;
}

// --skip-existing segments only the cases without a label map and leaves the
// finished ones untouched; a label map without the probability maps asked
// for, or --overwrite beside it, is an error.
TEST(Predict, SkipExistingFinishesAFolder) {
  test::TempDir dir;
  const std::string d = dir.path(), r = test::phantom_root();
  const std::string line = kBin + " predict --quiet --weights " + tiny_checkpoint() + " --window 16,16,16 --input " + r + " --output " + d + "/seg";
  std::string log;
  ASSERT_EQ(test::run_command(line + " 2>&1", &log), 0) << log;
  const auto cases = brats::find_predict_cases(r, "{id}_{modality}.nii.gz", brats::default_modalities(), d + "/seg");
  ASSERT_EQ(cases.size(), 3u);
  const auto first_map = voxels(cases[0].out);
  fs::remove(cases[0].out);
  { std::ofstream(cases[1].out, std::ios::trunc) << "kept"; }  // not a label map: proves it is not rewritten
  EXPECT_NE(test::run_command(line + " 2>&1", &log), 0);
  EXPECT_NE(log.find("--skip-existing"), std::string::npos) << log;
  ASSERT_EQ(test::run_command(line + " --skip-existing 2>&1", &log), 0) << log;
  EXPECT_NE(log.find("2 of 3 case(s) already have their outputs"), std::string::npos) << log;
  EXPECT_NE(log.find("1 case(s) in"), std::string::npos) << log;
  EXPECT_TRUE(torch::equal(voxels(cases[0].out), first_map));
  std::ifstream kept(cases[1].out);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(kept), {}), "kept");
  // Every case done: nothing to run.
  ASSERT_EQ(test::run_command(line + " --skip-existing 2>&1", &log), 0) << log;
  EXPECT_NE(log.find("3 of 3 case(s)"), std::string::npos) << log;
  EXPECT_EQ(log.find("case(s) in"), std::string::npos) << log;
  // Label maps without the probability maps now asked for: not skipped, not silently redone.
  EXPECT_NE(test::run_command(line + " --skip-existing --probabilities 2>&1", &log), 0);
  EXPECT_NE(log.find("has its label map '" + cases[0].out + "' but not '"), std::string::npos) << log;
  EXPECT_NE(log.find("_TC.nii.gz'"), std::string::npos) << log;
  EXPECT_NE(test::run_command(line + " --skip-existing --overwrite 2>&1", &log), 0);
  EXPECT_NE(log.find("contradict"), std::string::npos) << log;
  // A case cut short after its probability maps (the label map comes last) is redone, replacing them.
  const std::string probs = line + "2 --probabilities";
  ASSERT_EQ(test::run_command(probs + " 2>&1", &log), 0) << log;
  const std::string wt = d + "/seg2/" + cases[2].id + "_WT.nii.gz", label = d + "/seg2/" + cases[2].id + ".nii.gz";
  const auto wt_map = voxels(wt);
  fs::remove(label);
  { std::ofstream(wt, std::ios::trunc) << "cut short"; }
  ASSERT_EQ(test::run_command(probs + " --skip-existing 2>&1", &log), 0) << log;
  EXPECT_NE(log.find("2 of 3 case(s) already have their outputs"), std::string::npos) << log;
  EXPECT_TRUE(torch::equal(voxels(wt), wt_map));
  EXPECT_TRUE(fs::exists(label));
}

// A PyTorch state dict with the authors' key names (here the checkpoint's
// network exported by `weights export`) gives the checkpoint's maps, its
// probabilities voxel for voxel.
TEST(Predict, StateDictGivesTheCheckpointsMaps) {
  test::TempDir dir;
  const std::string d = dir.path(), r = test::phantom_root(), id = val_case();
  std::string log;
  ASSERT_EQ(test::run_command(kBin + " weights export " + tiny_checkpoint() + " " + d + "/net.pt 2>&1", &log), 0) << log;
  const std::string scans = " --window 16,16,16 --probabilities --quiet --flair " + scan(r, id, "flair") + " --t2 " + scan(r, id, "t2");
  ASSERT_EQ(test::run_command(kBin + " predict --weights " + tiny_checkpoint() + scans + " --out " + d + "/ck.nii.gz 2>&1", &log), 0) << log;
  ASSERT_EQ(test::run_command(kBin + " predict --weights " + d + "/net.pt --set 'modules.net.widths=[4, 8, 8, 8]'" + scans + " --out " + d +
                                  "/sd.nii.gz 2>&1",
                              &log),
            0)
      << log;
  EXPECT_TRUE(torch::equal(voxels(d + "/ck.nii.gz"), voxels(d + "/sd.nii.gz")));
  EXPECT_TRUE(torch::equal(voxels(d + "/ck_WT.nii.gz"), voxels(d + "/sd_WT.nii.gz")));
  // Without the widths the weights do not fit the default network: an error naming the file.
  EXPECT_EQ(test::run_command(kBin + " predict --weights " + d + "/net.pt" + scans + " --out " + d + "/x.nii.gz 2>&1", &log), 1) << log;
  EXPECT_NE(log.find(d + "/net.pt"), std::string::npos) << log;
}

// Finite weights that overflow (every tensor times 1e37: `verify` finds no
// NaN in them) make predict and the evaluation graph fail naming the NaN
// output, where they wrote an empty label map and scored Dice 0.
TEST(Predict, OverflowingWeightsAreAnErrorNotAScore) {
  test::TempDir dir;
  const std::string d = dir.path(), r = test::phantom_root(), id = val_case();
  std::string log;
  ASSERT_EQ(test::run_command(kBin + " weights export " + tiny_checkpoint() + " " + d + "/net.pt 2>&1", &log), 0) << log;
  io::NamedTensors tensors = io::read_state_dict(d + "/net.pt");
  for (auto& [name, t] : tensors)
    if (t.is_floating_point() && name.find("running_var") == std::string::npos) t = t * 1e37;
  io::write_state_dict(d + "/big.pt", tensors);
  const std::string widths = " --set 'modules.net.widths=[4, 8, 8, 8]'";
  EXPECT_EQ(test::run_command(kBin + " predict --quiet --weights " + d + "/big.pt" + widths + " --window 16,16,16 --flair " +
                                  scan(r, id, "flair") + " --out " + d + "/seg.nii.gz 2>&1",
                              &log),
            1)
      << log;
  EXPECT_NE(log.find("NaN or infinite value(s)"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(d + "/seg.nii.gz"));
  ASSERT_EQ(test::run_command(kBin + " weights import " + d + "/big.pt " + d + "/big_ck.pt --module net 2>&1", &log), 0) << log;
  EXPECT_EQ(test::run_command(kBin + " run " + kGraphs + "eval.yaml --quiet --set data.cases.root=" + r + " --set data.cases.split=" + r +
                                  "/split.yaml --set data.cases.subset=val --set modules.net.adapter=false --set modules.net.init.from=" +
                                  d + "/big_ck.pt" + widths + " --out " + d + "/eval 2>&1",
                              &log),
            1)
      << log;
  EXPECT_NE(log.find("eval.subset_report"), std::string::npos) << log;
  EXPECT_NE(log.find("NaN or infinite value(s)"), std::string::npos) << log;
}

// Bad input stops with an error naming the file or option and the fix, and
// leaves no output behind; so do channel orders that are not the training
// graph's.
TEST(Predict, BadInputIsAClearError) {
  test::TempDir dir;
  const std::string d = dir.path(), r = test::phantom_root(), id = val_case();
  const io::Volume flair = io::read_nifti(scan(r, id, "flair"));
  io::write_nifti(d + "/small_t1.nii.gz", flair.data.narrow(2, 0, 8), flair.affine, io::dtype::float32);
  io::Affine moved = flair.affine;
  moved[3] += 2.0;  // 2 mm along x
  io::write_nifti(d + "/moved_t1.nii.gz", flair.data, moved, io::dtype::float32);
  const std::string base = kBin + " predict --weights " + tiny_checkpoint() + " --window 16,16,16 --flair " + scan(r, id, "flair");
  std::string log;
  auto fails_with = [&](const std::string& args, const std::string& fragment) {
    EXPECT_EQ(test::run_command(base + " " + args + " 2>&1", &log), 1) << log;
    EXPECT_NE(log.find(fragment), std::string::npos) << log;
  };
  fails_with("--t1 " + d + "/small_t1.nii.gz --out " + d + "/a.nii.gz", "small_t1.nii.gz' has shape [16, 16, 8]");
  EXPECT_EQ(log.find("do not fit this network"), std::string::npos) << "a scan's shape is not the weights' fault: " << log;
  fails_with("--t1 " + d + "/moved_t1.nii.gz --out " + d + "/a.nii.gz", "are on different grids");
  fails_with("--scan dwi=" + d + "/small_t1.nii.gz --out " + d + "/a.nii.gz", "unknown modality 'dwi'");
  fails_with("--out " + d + "/a.nii.gz --set 'modules.net.widths=[8, 16, 32, 32]'", "the weights do not fit this network");
  EXPECT_NE(log.find(tiny_checkpoint()), std::string::npos) << log;
  fails_with("--t2 " + d + "/none.nii.gz --out " + d + "/a.nii.gz", "none.nii.gz': no such file");
  // Channel orders other than the training graph's (run's graph.yaml) would misname the label map's regions.
  fails_with("--regions WT,TC,ET --out " + d + "/a.nii.gz", "--regions WT TC ET is not the order the network was trained with: TC WT ET");
  fails_with("--modalities t1ce,flair,t1,t2 --out " + d + "/a.nii.gz", "give --modalities flair t1ce t1 t2");
  EXPECT_FALSE(fs::exists(d + "/a.nii.gz"));
  for (const auto& f : fs::directory_iterator(d)) EXPECT_EQ(f.path().filename().string().rfind(".umrflow", 0), std::string::npos);

  std::ofstream(d + "/kept.nii.gz") << "mine";
  fails_with("--out " + d + "/kept.nii.gz", "exists; pass --overwrite");
  EXPECT_EQ(fs::file_size(d + "/kept.nii.gz"), 4u);
  // --print-graph shows the graph with the overrides and keeps it runnable; it checks no output.
  ASSERT_EQ(test::run_command(base + " --out " + d + "/kept.nii.gz --print-graph --set step.write.threshold=0.25 2>&1", &log), 0) << log;
  EXPECT_NE(log.find("threshold: 0.25"), std::string::npos) << log;
  const auto kept = log.find("umrflow run ");
  ASSERT_NE(kept, std::string::npos) << log;
  const std::string graph = log.substr(kept + 12, log.find('\n', kept) - kept - 12);
  EXPECT_TRUE(fs::exists(graph)) << graph;
  fs::remove_all(fs::path(graph).parent_path());
  ASSERT_EQ(test::run_command(base + " --out " + d + "/kept.nii.gz --overwrite --quiet 2>&1", &log), 0) << log;
  EXPECT_EQ(voxels(d + "/kept.nii.gz").sizes(), flair.data.sizes());
}

}  // namespace umrflow
