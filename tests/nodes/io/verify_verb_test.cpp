#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <limits>

#include "io/nifti.h"
#include "io/state_dict.h"
#include "test_paths.h"
#include "test_util.h"

namespace umrflow {

namespace fs = std::filesystem;

namespace {

const std::string kBin = UMRFLOW_BINARY;

int verify(const std::string& args, std::string* out) { return test::run_command(kBin + " verify " + args + " 2>/dev/null", out); }

/// A copy of the test phantoms (3 cases) in a folder of its own.
std::string copy_of_phantoms(const std::string& dir) {
  const std::string to = dir + "/cases";
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(test::phantom_root()))
    if (e.is_directory()) fs::copy(e.path(), to + "/" + e.path().filename().string(), fs::copy_options::recursive);
  return to;
}

}  // namespace

// A state dict reads ok; one flipped byte inside a tensor's record, or a NaN
// weight, makes it DAMAGED with the reason, and the exit status 1.
TEST(Verify, StateDictsIntactDamagedOrNonFinite) {
  test::TempDir dir;
  const std::string good = dir.path() + "/good.pt", flipped = dir.path() + "/flipped.pt", nan = dir.path() + "/nan.pt";
  const torch::Tensor w = torch::arange(4096, torch::kFloat32);
  io::write_state_dict(good, {{"net.weight", w}, {"net.bias", torch::zeros({8})}});
  std::string bytes = test::read_file(good);
  const float marker = 1234.0f;
  char pattern[sizeof marker];
  std::memcpy(pattern, &marker, sizeof marker);
  const auto at = bytes.find(std::string(pattern, sizeof pattern));
  ASSERT_NE(at, std::string::npos);
  bytes[at + 1] ^= 0x10;
  test::write_file(flipped, bytes);
  torch::Tensor bad = w.clone();
  bad[7] = std::numeric_limits<float>::quiet_NaN();
  io::write_state_dict(nan, {{"net.weight", bad}});
  std::string out;
  EXPECT_EQ(verify(good, &out), 0) << out;
  EXPECT_NE(out.find(good + ": ok, PyTorch state dict"), std::string::npos) << out;
  EXPECT_NE(out.find("2 tensors, all finite"), std::string::npos) << out;
  EXPECT_EQ(verify(good + " " + flipped, &out), 1) << out;
  EXPECT_NE(out.find(good + ": ok"), std::string::npos) << out;
  EXPECT_NE(out.find(flipped + ": DAMAGED"), std::string::npos) << out;
  EXPECT_EQ(verify(nan, &out), 1) << out;
  EXPECT_NE(out.find("tensor 'net.weight' holds NaN"), std::string::npos) << out;
  EXPECT_EQ(verify(dir.write("notes.txt", "not weights"), &out), 1) << out;
  EXPECT_NE(out.find("neither a torch archive"), std::string::npos) << out;
}

// A folder of BraTS cases is read case by case: intact phantoms are ok with
// their count, labels and shape; a case lacking a scan and one holding a NaN
// voxel are both named with their reasons, and the exit status is 1.
TEST(Verify, FolderOfBratsCasesNamesEveryBadCase) {
  test::TempDir dir;
  const std::string cases = copy_of_phantoms(dir.path());
  std::string out;
  ASSERT_EQ(verify(cases, &out), 0) << out;
  EXPECT_NE(out.find(cases + ": ok, BraTS cases: 3 read whole (BraTS 2018-2021 names"), std::string::npos) << out;
  EXPECT_NE(out.find("3 with labels (TC in "), std::string::npos) << out;
  EXPECT_NE(out.find("shape 16x16x10"), std::string::npos) << out;
  // A case without its label file is named: a training run would stop at it.
  fs::remove(cases + "/Phantom_002/Phantom_002_seg.nii.gz");
  ASSERT_EQ(verify(cases, &out), 0) << out;
  EXPECT_NE(out.find("2 with labels"), std::string::npos) << out;
  EXPECT_NE(out.find("1 without a label file, which a training run stops at: Phantom_002"), std::string::npos) << out;
  // Only the two scans asked for need to exist.
  fs::remove(cases + "/Phantom_001/Phantom_001_t2.nii.gz");
  EXPECT_EQ(verify(cases + " --modalities flair,t1ce", &out), 0) << out;
  const std::string scan = cases + "/Phantom_003/Phantom_003_t1ce.nii.gz";
  io::Volume v = io::read_nifti(scan);
  v.data[1][2][3] = std::numeric_limits<float>::quiet_NaN();
  io::write_nifti(scan, v.data, v.affine, io::dtype::float32);
  EXPECT_EQ(verify(cases, &out), 1) << out;
  EXPECT_NE(out.find(cases + ": DAMAGED: 2 of 3 cases are bad: case Phantom_001: missing modality 't2'"), std::string::npos) << out;
  EXPECT_NE(out.find("case Phantom_003: '" + scan + "' holds 1 NaN or infinite voxel(s)"), std::string::npos) << out;
  EXPECT_NE(verify(dir.path() + "/missing", &out), 0) << out;
  fs::create_directories(dir.path() + "/empty");
  EXPECT_EQ(verify(dir.path() + "/empty", &out), 1) << out;
  EXPECT_NE(out.find("no BraTS case"), std::string::npos) << out;
}

}  // namespace umrflow
