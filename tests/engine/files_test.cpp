#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "test_util.h"
#include "umrflow/files.h"

namespace umrflow {

namespace fs = std::filesystem;

// Each scratch folder is new, under $TMPDIR, named by its prefix, readable by
// its owner only, and gone with its contents at the end of its scope.
TEST(ScratchFolder, IsFreshAndRemovedWithItsContents) {
  test::TempDir tmp;
  const char* old = std::getenv("TMPDIR");
  const std::string saved = old ? old : "";
  ::setenv("TMPDIR", tmp.path().c_str(), 1);
  std::string a_path, b_path;
  {
    ScratchFolder a("unit-"), b("unit-");
    a_path = a.path();
    b_path = b.path();
    EXPECT_NE(a_path, b_path);
    EXPECT_TRUE(fs::is_directory(a_path));
    EXPECT_EQ(fs::path(a_path).parent_path(), fs::path(tmp.path()));
    EXPECT_EQ(fs::path(a_path).filename().string().rfind("unit-", 0), 0u);
    EXPECT_EQ(fs::status(a_path).permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
    fs::create_directories(a_path + "/deep/er");
    std::ofstream(a_path + "/deep/er/f.txt") << "x";
  }
  if (old) ::setenv("TMPDIR", saved.c_str(), 1);
  else ::unsetenv("TMPDIR");
  EXPECT_FALSE(fs::exists(a_path));
  EXPECT_FALSE(fs::exists(b_path));
}

// An exception leaving the scope removes the folder; keep() leaves it.
TEST(ScratchFolder, RemovedOnAnExceptionKeptWhenAsked) {
  std::string thrown_path, kept_path;
  try {
    ScratchFolder s("unit-");
    thrown_path = s.path();
    throw std::runtime_error("stop");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(thrown_path.empty());
  EXPECT_FALSE(fs::exists(thrown_path));
  {
    ScratchFolder s("unit-");
    kept_path = s.path();
    s.keep();
  }
  EXPECT_TRUE(fs::is_directory(kept_path));
  fs::remove_all(kept_path);
}

// A temporary directory that is no folder, or one that cannot hold a new
// folder, is an error naming it.
TEST(ScratchFolder, UnusableTemporaryDirectoryIsAnError) {
  test::TempDir tmp;
  const std::string file = tmp.write("not_a_folder", "x");
  const char* old = std::getenv("TMPDIR");
  const std::string saved = old ? old : "";
  ::setenv("TMPDIR", file.c_str(), 1);
  std::string message;
  try {
    ScratchFolder s("unit-");
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("scratch folder"), std::string::npos) << message;
  EXPECT_NE(message.find("not_a_folder"), std::string::npos) << message;
  // A folder in which no folder can be made, not even by root.
  ::setenv("TMPDIR", "/proc", 1);
  message.clear();
  try {
    ScratchFolder s("unit-");
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  if (old) ::setenv("TMPDIR", saved.c_str(), 1);
  else ::unsetenv("TMPDIR");
  EXPECT_NE(message.find("scratch folder"), std::string::npos) << message;
  EXPECT_NE(message.find("cannot make the scratch folder '/proc/unit-"), std::string::npos) << message;
}

}  // namespace umrflow
