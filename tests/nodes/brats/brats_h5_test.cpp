#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "brats/brats.h"
#include "io/h5cache.h"
#include "io/nifti.h"
#include "nodes/node_harness.h"

namespace umrflow {

namespace fs = std::filesystem;

namespace {
/// Three phantom cases and their cache, made once for the suite.
struct CacheFixture {
  test::TempDir dir;
  std::string src, h5;
  CacheFixture() {
    brats::PhantomOptions o;
    o.cases = 3;
    o.size = 32;
    o.seed = 9;
    o.out = src = dir.path() + "/src";
    brats::write_phantoms(o);
    h5 = dir.path() + "/cache.h5";
    brats::convert_to_cache(src, h5, brats::default_modalities(), {"TC", "WT", "ET"});
  }
};
CacheFixture& fixture() {
  static CacheFixture f;
  return f;
}
}  // namespace

// The cache holds each case cropped to its brain box, equal to the NIfTI data.
TEST(BratsH5, CacheEqualsTheNiftiBrainBox) {
  auto& f = fixture();
  io::CacheReader reader(f.h5);
  ASSERT_EQ(reader.cases().size(), 3u);
  EXPECT_EQ(reader.modalities(), brats::default_modalities());
  const auto cases = brats::discover_cases(f.src, brats::default_modalities());
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& c = reader.cases()[i];
    EXPECT_EQ(c.id, cases[i].id);
    auto full = brats::read_case(cases[i], brats::default_modalities(), {"TC", "WT", "ET"}, true);
    const auto& s = c.box_start;
    const auto& e = c.box_stop;
    auto box = [&](const torch::Tensor& t) { return t.slice(1, s[0], e[0]).slice(2, s[1], e[1]).slice(3, s[2], e[2]); };
    // The box is tight: every face touches a voxel > 0.
    const auto fg = (box(full.image) > 0).any(0);
    EXPECT_TRUE(fg.select(0, 0).any().item<bool>() && fg.select(0, -1).any().item<bool>());
    EXPECT_EQ((full.image > 0).any(0).sum().item<std::int64_t>(), fg.sum().item<std::int64_t>());
    auto [image, label] = reader.read(i, {0, 0, 0}, {e[0] - s[0], e[1] - s[1], e[2] - s[2]});
    EXPECT_TRUE(torch::equal(image, box(full.image)));
    EXPECT_TRUE(torch::equal(label, box(full.label)));
    EXPECT_EQ(c.original_shape, (std::vector<std::int64_t>{32, 32, 20}));
    EXPECT_NEAR(c.affine[0], 240.0 / 32, 1e-9);
  }
}

// brats.h5 reproduces foreground crop (rounded to k) + random crop: its window
// is found at its recorded place in the NIfTI pipeline's foreground crop.
TEST(BratsH5, LoaderMatchesTheNiftiPipeline) {
  auto& f = fixture();
  auto h5 = test::make_node("brats.h5", "{file: " + f.h5 + ", crop: [16, 16, 8], k_divisible: [16, 16, 16]}");
  auto nifti = test::make_node("brats.cases", "{root: " + f.src + "}");
  auto fg = test::make_node("volume.crop_foreground", "{k_divisible: [16, 16, 16]}");
  for (std::int64_t i = 0; i < 3; ++i) {
    for (std::int64_t draw = 0; draw < 4; ++draw) {
      Context ctx(3, draw, i, "h5", true);
      Packet p = dynamic_cast<SourceNode&>(*h5).load(i, ctx);
      ASSERT_EQ(p.at("image").sizes(), (c10::IntArrayRef{4, 16, 16, 8}));
      Context ctx2(3, 0, i, "n", true);
      Packet whole = test::apply(*fg, dynamic_cast<SourceNode&>(*nifti).load(i, ctx2));
      const auto a = p.samples[0].tags.at("crop_start");
      const auto b = whole.samples[0].tags.at("foreground_start");
      auto window = [&](const torch::Tensor& t) {
        return t.slice(1, a[0] - b[0], a[0] - b[0] + 16).slice(2, a[1] - b[1], a[1] - b[1] + 16).slice(3, a[2] - b[2], a[2] - b[2] + 8);
      };
      EXPECT_TRUE(torch::equal(p.at("image"), window(whole.at("image")))) << i << " " << draw;
      EXPECT_TRUE(torch::equal(p.at("label"), window(whole.at("label"))));
    }
  }
}

// A truncated or foreign file is an error that names it.
TEST(BratsH5, BadFilesAreNamed) {
  auto& f = fixture();
  test::TempDir dir;
  const std::string cut = dir.path() + "/cut.h5";
  fs::copy_file(f.h5, cut);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  const std::string junk = dir.write("junk.h5", "not hdf5");
  for (const std::string& p : {cut, junk, dir.path() + "/none.h5"}) {
    try {
      io::CacheReader r(p);
      for (std::size_t i = 0; i < r.cases().size(); ++i) r.read(i, {0, 0, 0}, {32, 32, 20});
      FAIL() << p;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
}

// A conversion that fails on a case leaves neither the cache nor its
// temporary file, and an earlier cache of the same name stays whole.
TEST(BratsH5, FailedConversionLeavesNoTemporaryFile) {
  test::TempDir dir;
  const std::string path = dir.path() + "/c.h5";
  const auto one_case = [](std::int64_t i) {
    if (i == 1) throw std::runtime_error("case1: unreadable");
    return io::CaseData{"case" + std::to_string(i), torch::ones({1, 4, 4, 4}), torch::zeros({1, 4, 4, 4}).to(torch::kUInt8),
                        std::vector<double>(16, 0.0)};
  };
  io::write_cache(path, {"a"}, {"x"}, 1, one_case, nullptr);
  const auto size = fs::file_size(path);
  EXPECT_THROW(io::write_cache(path, {"a"}, {"x"}, 2, one_case, nullptr), std::runtime_error);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(fs::file_size(path), size);
  EXPECT_EQ(io::CacheReader(path).cases().size(), 1u);
}

// Reads decoded chunk by chunk outside HDF5 equal HDF5's own hyperslab reads:
// windows across chunk borders and past the stored box, int16 and float32
// images, with the memory cache off, partly full and holding everything.
TEST(BratsH5, ChunkReadsEqualHdf5Reads) {
  test::TempDir dir;
  for (bool integral : {true, false}) {
    const std::string path = dir.path() + (integral ? "/int16.h5" : "/float32.h5");
    torch::manual_seed(5);
    io::write_cache(path, {"a", "b", "c", "d"}, {"x", "y", "z"}, 2, [&](std::int64_t i) {
      torch::Tensor image = torch::randint(1, 900, {4, 70, 45, 66 - 3 * i}).to(torch::kFloat32);
      if (!integral) image = image + 0.25f;
      image.slice(2, 0, 5).zero_();  // a margin outside the brain box
      return io::CaseData{"case" + std::to_string(i), image, torch::randint(0, 2, {3, 70, 45, 66 - 3 * i}).to(torch::kUInt8),
                          std::vector<double>(16, 1.0)};
    });
    for (std::size_t budget : {std::size_t{0}, std::size_t{300} << 10, std::size_t{64} << 20}) {
      io::CacheReader reader(path, budget);
      std::mt19937 rng(budget + integral);
      for (int k = 0; k < 12; ++k) {
        const std::size_t i = k % 2;
        std::vector<std::int64_t> start(3), size(3);
        for (int a = 0; a < 3; ++a) {
          const std::int64_t len = reader.cases()[i].stored_shape[a + 1];
          size[a] = 1 + static_cast<std::int64_t>(rng() % (len + 10));
          start[a] = static_cast<std::int64_t>(rng() % (len + 10)) - 10;
        }
        auto [image, label] = reader.read(i, start, size);
        auto [image_ref, label_ref] = reader.read_by_hyperslab(i, start, size);
        EXPECT_TRUE(torch::equal(image, image_ref)) << integral << " " << budget << " " << k;
        EXPECT_TRUE(torch::equal(label, label_ref)) << integral << " " << budget << " " << k;
      }
      EXPECT_LE(reader.memory_cached(), budget);
      if (budget > 0) EXPECT_GT(reader.memory_cached(), 0u);
    }
  }
}

namespace {
/// Everything a reader gives of a cache: ids, shapes, boxes, affines, voxels.
struct CacheContents {
  std::vector<io::CachedCase> cases;
  std::vector<torch::Tensor> images, labels;
};
CacheContents read_all(const std::string& path) {
  io::CacheReader r(path);
  CacheContents c;
  c.cases = r.cases();
  for (std::size_t i = 0; i < r.cases().size(); ++i) {
    const auto& s = r.cases()[i].stored_shape;
    auto [image, label] = r.read(i, {0, 0, 0}, {s[1], s[2], s[3]});
    c.images.push_back(image);
    c.labels.push_back(label);
  }
  return c;
}
bool same(const CacheContents& a, const CacheContents& b) {
  if (a.cases.size() != b.cases.size()) return false;
  for (std::size_t i = 0; i < a.cases.size(); ++i) {
    const auto &x = a.cases[i], &y = b.cases[i];
    if (x.id != y.id || x.original_shape != y.original_shape || x.box_start != y.box_start || x.box_stop != y.box_stop ||
        x.affine != y.affine || x.stored_shape != y.stored_shape || !torch::equal(a.images[i], b.images[i]) ||
        !torch::equal(a.labels[i], b.labels[i]))
      return false;
  }
  return true;
}
}  // namespace

// One flipped byte, at 150 places spread over the file, either leaves what a
// reader sees unchanged (unused bytes) or is an error naming the file: never a
// crash and never a silently different value (chunk and metadata checksums).
TEST(BratsH5, FlippedBytesAreDetected) {
  auto& f = fixture();
  const CacheContents original = read_all(f.h5);
  std::ifstream in(f.h5, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  test::TempDir dir;
  const std::string damaged = dir.path() + "/damaged.h5";
  int errors = 0;
  for (int k = 0; k < 150; ++k) {
    std::string copy = bytes;
    const std::size_t at = static_cast<std::size_t>(k) * 7919 % copy.size();
    copy[at] = static_cast<char>(copy[at] ^ 0x20);
    std::ofstream(damaged, std::ios::binary | std::ios::trunc) << copy;
    try {
      EXPECT_TRUE(same(read_all(damaged), original)) << "byte " << at << " changed what is read without an error";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(damaged), std::string::npos) << e.what();
      ++errors;
    }
  }
  EXPECT_GT(errors, 50);  // most bytes of a compressed, checksummed file matter
}

// The file is plain HDF5 that h5py reads with the documented layout.
TEST(BratsH5, ReadableByH5py) {
  if (test::run_command("/usr/bin/python3 -c 'import h5py'", nullptr) != 0) GTEST_SKIP() << "python3-h5py is not installed";
  auto& f = fixture();
  test::TempDir dir;
  const std::string script = dir.write("check.py", R"(import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
assert f.attrs['format'][0] in ('umrflow.brats-cache', b'umrflow.brats-cache'), f.attrs['format']
assert list(f['cases'].keys()) == ['Phantom_001', 'Phantom_002', 'Phantom_003']
c = f['cases/Phantom_002']
img, lab = c['image'], c['label']
assert img.shape[0] == 4 and lab.shape[0] == 3, (img.shape, lab.shape)
assert img.chunks == (1,) + tuple(min(32, n) for n in img.shape[1:]), img.chunks
start, stop = c.attrs['box_start'], c.attrs['box_stop']
assert tuple(img.shape[1:]) == tuple(stop - start), (img.shape, start, stop)
assert set(np.unique(lab[...])) <= {0, 1}
print(int(np.asarray(img[...], dtype=np.int64).sum()))
)");
  std::string out;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + script + " " + f.h5, &out), 0) << out;
  io::CacheReader r(f.h5);
  const auto& c = r.cases()[1];
  auto [image, label] = r.read(1, {0, 0, 0}, {c.stored_shape[1], c.stored_shape[2], c.stored_shape[3]});
  EXPECT_EQ(std::stoll(out), image.sum().item<double>());
}

}  // namespace umrflow
