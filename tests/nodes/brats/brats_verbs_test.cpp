#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "test_paths.h"
#include "test_util.h"

namespace umrflow {

namespace {

const std::string kBin = UMRFLOW_BINARY;

}  // namespace

// `split --from CACHE.h5` lists the cache's cases (it read them through a
// reader already destroyed and failed with bad_alloc on every valid cache).
TEST(BratsVerbs, SplitFromAnHdf5CacheListsItsCases) {
  test::TempDir dir;
  std::string log;
  const std::string h5 = dir.path() + "/cases.h5", out = dir.path() + "/split.yaml";
  ASSERT_EQ(test::run_command(kBin + " convert brats --src " + test::phantom_root() + " --out " + h5 + " 2>&1", &log), 0) << log;
  ASSERT_EQ(test::run_command(kBin + " split --from " + h5 + " --val 0 --test 0 --out " + out + " 2>&1", &log), 0) << log;
  EXPECT_NE(log.find("3 train, 0 val, 0 test"), std::string::npos) << log;
}

// An id list with a case twice, or a file that is no id list (a scan), is an
// error naming the id or the file and line; blanks around ids are ignored.
TEST(BratsVerbs, SplitRefusesDuplicateIdsAndBinaryFiles) {
  test::TempDir dir;
  std::string log;
  const std::string ids = dir.path() + "/ids.txt", scan = dir.path() + "/scan.txt", out = dir.path() + "/split.yaml";
  std::ofstream(ids) << "# cases\ncase_a\n  case_b \n\n   \ncase_a\n";
  EXPECT_NE(test::run_command(kBin + " split --from " + ids + " --out " + out + " 2>&1", &log), 0) << log;
  EXPECT_NE(log.find("'case_a' is listed twice"), std::string::npos) << log;
  std::ofstream(ids) << "case_a\n  case_b \n\n   \n";
  EXPECT_EQ(test::run_command(kBin + " split --from " + ids + " --val 0 --test 0 --out " + out + " 2>&1", &log), 0) << log;
  EXPECT_NE(log.find("2 train"), std::string::npos) << log;
  std::ofstream(scan) << "case_a\n" << std::string("\x1f\x8b\x08\x00\x01", 5) << "\n";
  EXPECT_NE(test::run_command(kBin + " split --from " + scan + " --out " + out + " 2>&1", &log), 0) << log;
  EXPECT_NE(log.find(scan + ":2: not a case id"), std::string::npos) << log;
}

}  // namespace umrflow
