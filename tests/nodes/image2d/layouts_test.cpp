#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "image2d/layouts.h"
#include "test_util.h"

namespace umrflow::image2d {

namespace {

/// Creates each file (a few bytes: discovery never decodes) under `dir`.
void touch(const test::TempDir& dir, std::initializer_list<const char*> names) {
  for (const char* name : names) dir.write(name, "x");
}

/// The message of the std::runtime_error `f` throws, or "" when it returns.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> ids(const std::vector<PairedItem>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) out.push_back(item.id);
  return out;
}

#define EXPECT_CONTAINS(text, fragment) EXPECT_NE((text).find(fragment), std::string::npos) << (text)

}  // namespace

// An RGB-D root pairs RGB/, depth/, GT/ by stem (any extension, any case), sorted by id; other files and folders are ignored.
TEST(Layouts, RgbdRootPairsByStemSortedById) {
  test::TempDir dir;
  touch(dir,
        {"RGB/b.jpg", "RGB/a.jpg", "RGB/10.jpeg", "RGB/2.JPG", "depth/a.png", "depth/b.bmp", "depth/10.png", "depth/2.BMP",
         "GT/a.png", "GT/b.png", "GT/10.png", "GT/2.png", "RGB/Thumbs.db", "RGB/.hidden.jpg", "depth/notes.txt", "GT/sub/c.png"});
  const std::string root = dir.path();
  const auto items = discover_sod(root, "depth", true);
  EXPECT_EQ(ids(items), (std::vector<std::string>{"10", "2", "a", "b"}));
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[1].rgb, root + "/RGB/2.JPG");
  EXPECT_EQ(items[1].aux, root + "/depth/2.BMP");
  EXPECT_EQ(items[1].gt, root + "/GT/2.png");
  EXPECT_EQ(items[0].rgb, root + "/RGB/10.jpeg");
  EXPECT_EQ(discover_sod(root + "/", "depth", true)[3].gt, root + "/GT/b.png");
}

// Without ground truth GT/ may be absent and items carry no gt path; an RGB-T root reads T/.
TEST(Layouts, RgbtRootAndNoGroundTruth) {
  test::TempDir dir;
  touch(dir, {"RGB/1.jpg", "RGB/2.jpg", "T/1.jpg", "T/2.jpg"});
  const auto items = discover_sod(dir.path(), "T", false);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].aux, dir.path() + "/T/1.jpg");
  EXPECT_TRUE(items[0].gt.empty());
  EXPECT_CONTAINS(error_of([&] { discover_sod(dir.path(), "T", true); }), "no folder 'GT'");
}

// A missing root or folder names the layout expected, and points at a folder whose name differs only in case.
TEST(Layouts, MissingFoldersNameTheLayout) {
  test::TempDir dir;
  const std::string missing = error_of([&] { discover_sod(dir.path() + "/nope", "depth", true); });
  EXPECT_EQ(missing.rfind("'" + dir.path() + "/nope': no such folder", 0), 0u) << missing;
  EXPECT_CONTAINS(missing, "RGB/, depth/ and GT/");
  touch(dir, {"RGB/a.jpg", "Depth/a.png", "GT/a.png"});
  const std::string depth = error_of([&] { discover_sod(dir.path(), "depth", true); });
  EXPECT_EQ(depth.rfind("'" + dir.path() + "': no folder 'depth'", 0), 0u) << depth;
  EXPECT_CONTAINS(depth, "there is 'Depth'");
  EXPECT_CONTAINS(depth, "an RGB-D SOD root holds RGB/, depth/ and GT/");
  EXPECT_CONTAINS(error_of([&] { discover_sod(dir.path(), "T", true); }), "an RGB-T SOD root holds RGB/, T/ and GT/");
}

// An image without a partner names the file and the folder searched, in either direction; many are counted.
TEST(Layouts, ImagesWithoutPartnersAreNamed) {
  test::TempDir dir;
  touch(dir, {"RGB/a.jpg", "RGB/b.jpg", "depth/a.png", "depth/b.png", "GT/a.png", "GT/b.png"});
  const std::string root = dir.path();
  touch(dir, {"RGB/c.jpg"});
  std::string e = error_of([&] { discover_sod(root, "depth", false); });
  EXPECT_EQ(e.rfind("'" + root + "/RGB/c.jpg' has no partner in '" + root + "/depth'", 0), 0u) << e;
  EXPECT_CONTAINS(e, "looked for c.jpg, .jpeg, .png or .bmp");
  std::filesystem::remove(root + "/RGB/c.jpg");
  touch(dir, {"GT/z.png"});
  EXPECT_TRUE(error_of([&] { discover_sod(root, "depth", false); }).empty());  // GT/ is not read without need_gt
  e = error_of([&] { discover_sod(root, "depth", true); });
  EXPECT_EQ(e.rfind("'" + root + "/GT/z.png' has no partner in '" + root + "/RGB'", 0), 0u) << e;
  touch(dir, {"RGB/1.jpg", "RGB/2.jpg", "RGB/3.jpg", "RGB/4.jpg", "RGB/5.jpg", "RGB/6.jpg"});
  e = error_of([&] { discover_sod(root, "depth", true); });
  EXPECT_EQ(e.rfind("'" + root + "': 13 images without a partner:", 0), 0u) << e;  // 6 x (depth, GT) + z.png
  EXPECT_CONTAINS(e, "... and 8 more");
}

// Two files with one stem in a folder are ambiguous: both are named.
TEST(Layouts, OneStemTwoFilesIsAnError) {
  test::TempDir dir;
  touch(dir, {"RGB/a.jpg", "RGB/a.png", "depth/a.png", "GT/a.png"});
  const std::string e = error_of([&] { discover_sod(dir.path(), "depth", true); });
  EXPECT_EQ(e.rfind("'" + dir.path() + "/RGB': 2 files with the stem 'a' ('a.jpg', 'a.png'): keep one", 0), 0u) << e;
}

// An RGB/ folder without images is an error that asks whether the root is right.
TEST(Layouts, EmptyDataSetIsAnError) {
  test::TempDir dir;
  touch(dir, {"RGB/readme.txt", "depth/a.png", "GT/a.png"});
  const std::string e = error_of([&] { discover_sod(dir.path(), "depth", true); });
  EXPECT_EQ(e.rfind("'" + dir.path() + "/RGB': no images", 0), 0u) << e;
  EXPECT_THROW(discover_sod(dir.path(), "", true), std::invalid_argument);
}

// SUN-RGBD follows the split list's order, skipping comments, blank lines, spaces and CRs; unlisted images are ignored.
TEST(Layouts, SunRgbdFollowsTheSplitList) {
  test::TempDir dir;
  touch(dir, {"image/0001.jpg", "image/0002.jpg", "image/0003.jpg", "image/0004.jpg", "image/0004.png", "depth/0001.png",
              "depth/0002.png", "depth/0003.png", "label/0001.png", "label/0002.png", "label/0003.png"});
  const std::string split = dir.write("test.txt", "# SUN-RGBD test ids\n\n  0003  \r\n0001 # the first\r\n\t\n0002");
  const auto items = discover_sunrgbd(dir.path(), split);
  EXPECT_EQ(ids(items), (std::vector<std::string>{"0003", "0001", "0002"}));
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].rgb, dir.path() + "/image/0003.jpg");
  EXPECT_EQ(items[0].aux, dir.path() + "/depth/0003.png");
  EXPECT_EQ(items[0].gt, dir.path() + "/label/0003.png");
}

// SUN-RGBD errors name the list line (missing image, id twice, two words), or the list, folder or ambiguous file.
TEST(Layouts, SunRgbdErrorsNameTheListLine) {
  test::TempDir dir;
  touch(dir, {"image/a.jpg", "image/b.jpg", "image/b.png", "depth/a.png", "depth/b.png", "label/a.png", "label/b.png"});
  const std::string root = dir.path();
  const std::string missing = dir.write("missing.txt", "a\n# comment\nzz\n");
  std::string e = error_of([&] { discover_sunrgbd(root, missing); });
  EXPECT_EQ(e.rfind("'" + missing + "': 3 problems with the listed ids:", 0), 0u) << e;
  EXPECT_CONTAINS(e,
                  "'" + missing + "' line 3: 'zz' has no image in '" + root + "/depth' (looked for zz.jpg, .jpeg, .png or .bmp)");
  const std::string twice = dir.write("twice.txt", "a\n\na\n");
  EXPECT_CONTAINS(error_of([&] { discover_sunrgbd(root, twice); }),
                  "'" + twice + "' line 3: 'a' is listed again (first on line 1)");
  const std::string words = dir.write("words.txt", "a b\n");
  EXPECT_CONTAINS(error_of([&] { discover_sunrgbd(root, words); }), "'" + words + "' line 1: 'a b' holds more than one word");
  const std::string ambiguous = dir.write("ambiguous.txt", "b\n");
  EXPECT_CONTAINS(error_of([&] { discover_sunrgbd(root, ambiguous); }), "'" + root + "/image': 2 files with the stem 'b'");
  const std::string empty = dir.write("empty.txt", "# nothing\n\n");
  EXPECT_CONTAINS(error_of([&] { discover_sunrgbd(root, empty); }), "'" + empty + "': lists no ids");
  EXPECT_CONTAINS(error_of([&] { discover_sunrgbd(root, root + "/none.txt"); }), "'" + root + "/none.txt': no such file");
  std::filesystem::remove_all(root + "/label");
  const std::string ok = dir.write("ok.txt", "a\n");
  EXPECT_CONTAINS(error_of([&] { discover_sunrgbd(root, ok); }),
                  "no folder 'label'; a SUN-RGBD root holds image/, depth/ and label/");
}

}  // namespace umrflow::image2d
