#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "test_util.h"
#include "umrflow/digest.h"

namespace umrflow {

namespace {

std::string error_of(const std::string& checkpoint) {
  try {
    check_recorded_digest(checkpoint);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

// SHA-256 gives FIPS 180-4's example digests: the empty message, "abc", the
// two-block 448-bit message and a million 'a' fed in uneven pieces.
TEST(Digest, Sha256MatchesTheStandardsExamples) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two.data(), two.size()), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  test::TempDir dir;
  const std::string million = dir.write("a.bin", std::string(1000000, 'a'));
  EXPECT_EQ(sha256_file(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// A file of random bytes spanning many blocks and read buffers digests as the
// system's sha256sum says.
TEST(Digest, FileDigestAgreesWithSha256sum) {
  test::TempDir dir;
  std::mt19937 rng(7);
  std::string bytes(3 * (1 << 20) + 17, '\0');
  for (auto& c : bytes) c = static_cast<char>(rng());
  const std::string path = dir.write("random.bin", bytes);
  std::string out;
  ASSERT_EQ(test::run_command("sha256sum " + path, &out), 0);
  EXPECT_EQ(sha256_file(path), out.substr(0, 64));
}

// The ledger: no ledger means nothing to compare; a recorded file passes; while
// replacing, both digests are accepted; afterwards only the new one; a changed
// file is refused naming the ledger; a malformed ledger names its line.
TEST(Digest, LedgerAcceptsRecordedFilesOnly) {
  test::TempDir dir;
  const std::string ckpt = dir.write("last.pt", "first");
  EXPECT_FALSE(check_recorded_digest(ckpt));
  record_digest(ckpt, sha256_file(ckpt), false);
  EXPECT_TRUE(check_recorded_digest(ckpt));
  EXPECT_EQ(digest_ledger_for(ckpt), dir.path() + "/checksums.sha256");
  const std::string second = sha256_hex("second", 6);
  record_digest(ckpt, second, true);
  EXPECT_TRUE(check_recorded_digest(ckpt));  // the old file, mid-replacement
  dir.write("last.pt", "second");
  EXPECT_TRUE(check_recorded_digest(ckpt));  // the new one
  record_digest(ckpt, second, false);
  EXPECT_EQ(test::read_file(dir.path() + "/checksums.sha256"), second + "  last.pt\n");
  dir.write("other.pt", "x");
  EXPECT_FALSE(check_recorded_digest(dir.path() + "/other.pt"));
  dir.write("last.pt", "first");
  const std::string e = error_of(ckpt);
  EXPECT_NE(e.find("last.pt' does not match its SHA-256 in " + dir.path() + "/checksums.sha256"), std::string::npos) << e;
  dir.write("checksums.sha256", second + "  last.pt\nnot a digest\n");
  const std::string m = error_of(ckpt);
  EXPECT_NE(m.find("checksums.sha256:2: not a sha256sum line"), std::string::npos) << m;
}

}  // namespace umrflow
