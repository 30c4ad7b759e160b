#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/nifti.h"
#include "test_paths.h"
#include "test_util.h"

namespace umrflow {

namespace {
const char* kPython = "/usr/bin/python3";
bool have_nibabel() { return test::run_command(std::string(kPython) + " -c 'import nibabel'", nullptr) == 0; }
}  // namespace

// Writing and reading back keeps shape, voxel order, values and affine, for each datatype.
TEST(Nifti, RoundTripKeepsEverything) {
  test::TempDir dir;
  torch::Tensor data = torch::arange(2 * 3 * 4, torch::kFloat32).view({2, 3, 4}) - 5;
  const io::Affine affine = {1.5, 0, 0, -10, 0, 2.0, 0, 20, 0, 0, 3.0, 5, 0, 0, 0, 1};
  for (int dt : {io::dtype::int16, io::dtype::int32, io::dtype::float32}) {
    const std::string p = dir.path() + "/v" + std::to_string(dt) + ".nii.gz";
    io::write_nifti(p, data, affine, dt);
    io::Volume v = io::read_nifti(p);
    EXPECT_EQ(v.datatype, dt);
    EXPECT_TRUE(torch::equal(v.data, data)) << dt;
    for (int i = 0; i < 16; ++i) EXPECT_NEAR(v.affine[i], affine[i], 1e-5) << i;
  }
  const std::string plain = dir.path() + "/v.nii";
  io::write_nifti(plain, data.clamp_min(0), affine, io::dtype::uint8);
  EXPECT_TRUE(torch::equal(io::read_nifti(plain).data, data.clamp_min(0)));
  EXPECT_EQ(io::read_nifti_shape(plain), (std::vector<std::int64_t>{2, 3, 4}));
}

// A file umrflow writes opens in nibabel with the same shape, affine and values,
// and a file nibabel writes (with a scaling slope) loads in umrflow.
TEST(Nifti, AgreesWithNibabel) {
  if (!have_nibabel()) GTEST_SKIP() << "python3-nibabel is not installed (tools/setup.sh installs it)";
  test::TempDir dir;
  torch::Tensor data = torch::arange(3 * 4 * 5, torch::kFloat32).view({3, 4, 5});
  const io::Affine affine = {2, 0, 0, 1, 0, 3, 0, 2, 0, 0, 4, 3, 0, 0, 0, 1};
  io::write_nifti(dir.path() + "/ours.nii.gz", data, affine, io::dtype::int16);
  const std::string script = dir.write("check.py", R"(import sys, nibabel as nib, numpy as np
d = sys.argv[1]
im = nib.load(d + '/ours.nii.gz')
a = im.get_fdata()
assert a.shape == (3, 4, 5), a.shape
assert np.array_equal(a, np.arange(60).reshape(3, 4, 5)), 'values'
assert np.allclose(im.affine, [[2,0,0,1],[0,3,0,2],[0,0,4,3],[0,0,0,1]]), im.affine
v = (np.arange(24).reshape(2, 3, 4) % 7).astype(np.int16)
out = nib.Nifti1Image(v, np.diag([1.5, 1.5, 2.0, 1.0]))
out.header.set_slope_inter(0.5, 10.0)
nib.save(out, d + '/theirs.nii.gz')
print('ok')
)");
  std::string out;
  ASSERT_EQ(test::run_command(std::string(kPython) + " " + script + " " + dir.path(), &out), 0) << out;
  io::Volume v = io::read_nifti(dir.path() + "/theirs.nii.gz");
  torch::Tensor expected = (torch::arange(24, torch::kFloat32).view({2, 3, 4}).remainder(7)) * 0.5 + 10.0;
  EXPECT_TRUE(torch::allclose(v.data, expected));
  EXPECT_DOUBLE_EQ(v.affine[0], 1.5);
  EXPECT_DOUBLE_EQ(v.affine[10], 2.0);
}

// A map written like a reference scan keeps that scan's header as nibabel
// reads it (sform and qform with their codes, voxel sizes, units,
// description); only the datatype changes and the reference's scaling is dropped.
TEST(Nifti, WriteLikeKeepsTheReferenceHeader) {
  if (!have_nibabel()) GTEST_SKIP() << "python3-nibabel is not installed (tools/setup.sh installs it)";
  test::TempDir dir;
  const std::string make = dir.write("make.py", R"(import sys, nibabel as nib, numpy as np
d = sys.argv[1]
aff = np.array([[-1.0, 0, 0, 90], [0, 1.2, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])
im = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), aff)
im.header.set_sform(aff, code=1)
im.header.set_qform(aff, code=2)
im.header.set_xyzt_units('mm', 'sec')
im.header['descrip'] = b'scanner X'
im.header.set_slope_inter(2.0, 5.0)
nib.save(im, d + '/ref.nii.gz')
)");
  std::string out;
  ASSERT_EQ(test::run_command(std::string(kPython) + " " + make + " " + dir.path() + " 2>&1", &out), 0) << out;
  const torch::Tensor labels = torch::tensor({0, 1, 2, 4}, torch::kFloat32).repeat({15}).view({3, 4, 5});
  io::write_nifti_like(dir.path() + "/seg.nii.gz", labels, dir.path() + "/ref.nii.gz", io::dtype::uint8);
  const std::string check = dir.write("check.py", R"(import sys, nibabel as nib, numpy as np
d = sys.argv[1]
r, s = nib.load(d + '/ref.nii.gz'), nib.load(d + '/seg.nii.gz')
rh, sh = r.header, s.header
print(s.get_data_dtype(), np.allclose(sh.get_sform(), rh.get_sform()), np.allclose(sh.get_qform(), rh.get_qform()),
      int(sh['sform_code']), int(sh['qform_code']), sh.get_zooms() == rh.get_zooms(), sh.get_xyzt_units(),
      sh['descrip'].tobytes().rstrip(bytes(1)).decode(), np.asarray(s.dataobj).ravel()[:5].tolist())
)");
  ASSERT_EQ(test::run_command(std::string(kPython) + " " + check + " " + dir.path() + " 2>&1", &out), 0) << out;
  EXPECT_EQ(out, "uint8 True True 1 2 True ('mm', 'sec') scanner X [0, 1, 2, 4, 0]\n");
  EXPECT_THROW(io::write_nifti_like(dir.path() + "/bad.nii.gz", torch::zeros({3, 4, 6}), dir.path() + "/ref.nii.gz", io::dtype::uint8),
               std::invalid_argument);
}

// A phantom case opens in nibabel with the shape, affine and values umrflow reads.
TEST(Nifti, PhantomOpensInNibabel) {
  if (!have_nibabel()) GTEST_SKIP() << "python3-nibabel is not installed (tools/setup.sh installs it)";
  test::TempDir dir;
  std::string out;
  ASSERT_EQ(test::run_command(std::string(UMRFLOW_BINARY) + " synth brats --cases 1 --size 32 --out " + dir.path(), &out), 0) << out;
  const std::string file = dir.path() + "/Phantom_001/Phantom_001_t1ce.nii.gz";
  const std::string script = dir.write("p.py", "import sys, nibabel as nib, numpy as np\nim = nib.load(sys.argv[1])\n"
                                               "a = im.get_fdata()\nprint(a.shape[0], a.shape[1], a.shape[2], int(a.sum()), "
                                               "int((a * np.arange(a.shape[0])[:, None, None]).sum()), *im.affine.flatten())\n");
  ASSERT_EQ(test::run_command(std::string(kPython) + " " + script + " " + file, &out), 0) << out;
  std::istringstream in(out);
  std::int64_t x, y, z;
  double sum, weighted;
  in >> x >> y >> z >> sum >> weighted;
  io::Volume v = io::read_nifti(file);
  EXPECT_EQ(v.data.sizes(), (c10::IntArrayRef{x, y, z}));
  const torch::Tensor d = v.data.to(torch::kFloat64);  // exact sums of integer voxels
  EXPECT_EQ(sum, d.sum().item<double>());
  EXPECT_EQ(weighted, (d * torch::arange(x, torch::kFloat64).view({x, 1, 1})).sum().item<double>());  // voxel order, not just totals
  for (int i = 0; i < 16; ++i) {
    double a;
    in >> a;
    EXPECT_NEAR(a, v.affine[i], 1e-5) << i;
  }
}

// A truncated .nii.gz, a missing file and garbage are errors that name the file.
TEST(Nifti, BadFilesNameTheFile) {
  test::TempDir dir;
  const std::string good = dir.path() + "/good.nii.gz";
  io::write_nifti(good, torch::rand({16, 16, 16}) * 100, io::diagonal_affine(1, 1, 1), io::dtype::float32);
  const auto size = std::filesystem::file_size(good);
  std::filesystem::copy_file(good, dir.path() + "/cut.nii.gz");
  std::filesystem::resize_file(dir.path() + "/cut.nii.gz", size / 2);
  for (const std::string name : {"cut.nii.gz", "missing.nii.gz", "junk.nii"}) {
    if (name == "junk.nii") dir.write(name, "this is not a NIfTI file at all, just text padding padding padding");
    try {
      io::read_nifti(dir.path() + "/" + name);
      FAIL() << name;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

// A header that declares far more voxels than its file holds (dim[1..3] set to
// 30000 in a 16^3 image) is refused before anything is allocated.
TEST(Nifti, HeaderLargerThanTheFileIsRefused) {
  test::TempDir dir;
  const std::string path = dir.path() + "/big.nii";
  io::write_nifti(path, torch::rand({16, 16, 16}), io::diagonal_affine(1, 1, 1), io::dtype::float32);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    const std::int16_t big = 30000;
    for (int d = 1; d <= 3; ++d) {
      f.seekp(40 + 2 * d);  // NIfTI-1: short dim[8] at byte 40
      f.write(reinterpret_cast<const char*>(&big), 2);
    }
  }
  try {
    io::read_nifti(path);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("more than the"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("big.nii"), std::string::npos) << e.what();
  }
}

}  // namespace umrflow
