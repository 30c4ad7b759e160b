#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"
#include "umrflow/archive_check.h"

namespace umrflow {

namespace fs = std::filesystem;

namespace {

std::string error_of(const std::string& path) {
  try {
    check_zip_archive(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

// The CRC-32 is the zip/zlib one: the standard check value of "123456789" and
// the same result whether the bytes come at once or in pieces.
TEST(ArchiveCheck, Crc32MatchesTheCheckValue) {
  const std::string s = "123456789";
  EXPECT_EQ(crc32_update(0, s.data(), s.size()), 0xCBF43926u);
  EXPECT_EQ(crc32_update(crc32_update(0, s.data(), 4), s.data() + 4, 5), 0xCBF43926u);
  EXPECT_EQ(crc32_update(0, nullptr, 0), 0u);
}

// A checkpoint as written passes with every record verified; one flipped bit in
// a tensor's bytes, which libtorch's reader loads as a different weight, fails
// with the file and record named; a cut-short file and a non-zip fail too.
TEST(ArchiveCheck, FlippedBitAndTruncationAreFound) {
  test::TempDir dir;
  const std::string path = dir.path() + "/ckpt.pt";
  const torch::Tensor w = torch::arange(1000, torch::kFloat32) * 0.25 + 7;
  {
    torch::serialize::OutputArchive a;
    a.write("net.weight", w);
    a.write("net.bias", torch::ones({3}));
    a.save_to(path);
  }
  const ArchiveCheck ok = check_zip_archive(path);
  EXPECT_GE(ok.records, 3);
  EXPECT_EQ(ok.verified, ok.records);
  EXPECT_GE(ok.bytes, 4000);

  std::string bytes = test::read_file(path);
  const std::string pattern(reinterpret_cast<const char*>(w.data_ptr<float>()) + 2000, 16);  // weights 500..503
  const auto at = bytes.find(pattern);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] ^= 0x01;
  const std::string flipped = dir.path() + "/flipped.pt";
  test::write_file(flipped, bytes);
  {
    torch::serialize::InputArchive a;  // libtorch alone does not notice
    a.load_from(flipped);
    torch::Tensor t;
    a.read("net.weight", t);
    EXPECT_FALSE(torch::equal(t, w));
  }
  const std::string e = error_of(flipped);
  EXPECT_NE(e.find("flipped.pt"), std::string::npos) << e;
  EXPECT_NE(e.find("CRC-32"), std::string::npos) << e;

  const std::string cut = dir.path() + "/cut.pt";
  test::write_file(cut, test::read_file(path).substr(0, bytes.size() / 2));
  EXPECT_NE(error_of(cut).find("damaged"), std::string::npos) << error_of(cut);
  EXPECT_NE(error_of(dir.write("text.pt", "not a zip at all, just some words")).find("no zip end record"), std::string::npos);
}

// A record whose directory entry claims deflate with a plain size no deflate
// stream of its length can produce (libtorch would allocate it up front), or
// a compression method torch archives never use, is refused with its name.
TEST(ArchiveCheck, ImpossibleCompressedSizesAreRefused) {
  test::TempDir dir;
  const std::string path = dir.path() + "/ckpt.pt";
  {
    torch::serialize::OutputArchive a;
    a.write("net.weight", torch::ones({16}));
    a.save_to(path);
  }
  const std::string bytes = test::read_file(path);
  const auto entry = bytes.find(std::string("PK\x01\x02", 4));
  ASSERT_NE(entry, std::string::npos);
  const auto patched = [&](std::uint16_t method, std::uint32_t plain) {
    std::string b = bytes;
    std::memcpy(&b[entry + 10], &method, 2);
    std::memcpy(&b[entry + 24], &plain, 4);
    const std::string out = dir.path() + "/m" + std::to_string(method) + ".pt";
    test::write_file(out, b);
    return error_of(out);
  };
  const std::string bomb = patched(8, 0x8e0000f3u);
  EXPECT_NE(bomb.find("m8.pt"), std::string::npos) << bomb;
  EXPECT_NE(bomb.find("more than deflate can produce"), std::string::npos) << bomb;
  const std::string odd = patched(12, 0x100);
  EXPECT_NE(odd.find("compression method 12"), std::string::npos) << odd;
}

// End records that list no records (the counts zeroed) are refused: a reader
// scanning the local headers would still find records the check never saw.
TEST(ArchiveCheck, EndRecordListingNoRecordsIsRefused) {
  test::TempDir dir;
  const std::string path = dir.path() + "/ckpt.pt";
  {
    torch::serialize::OutputArchive a;
    a.write("w", torch::ones({4}));
    a.save_to(path);
  }
  std::string bytes = test::read_file(path);
  const auto end = bytes.rfind(std::string("PK\x05\x06", 4));
  ASSERT_NE(end, std::string::npos);
  bytes[end + 8] = bytes[end + 9] = bytes[end + 10] = bytes[end + 11] = '\0';  // records on this disk, and in all
  // libtorch also writes a zip64 end record, which readers follow: zero its counts too.
  const auto end64 = bytes.rfind(std::string("PK\x06\x06", 4));
  if (end64 != std::string::npos)
    for (int k = 24; k < 40; ++k) bytes[end64 + k] = '\0';
  const std::string empty = dir.path() + "/empty.pt";
  test::write_file(empty, bytes);
  const std::string e = error_of(empty);
  EXPECT_NE(e.find("empty.pt"), std::string::npos) << e;
  EXPECT_NE(e.find("lists no records"), std::string::npos) << e;
}

}  // namespace umrflow
