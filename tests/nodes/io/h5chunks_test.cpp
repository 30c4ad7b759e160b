#include <gtest/gtest.h>

#include <random>
#include <zlib.h>

#include "io/h5chunks.h"

namespace umrflow::io {

namespace {
std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

std::vector<std::uint8_t> bytes(const Bytes& b) { return {b.begin(), b.end()}; }

/// A chunk as HDF5 stores it with shuffle + deflate + Fletcher-32, built with
/// zlib's own compressor and this file's shuffle.
std::vector<std::uint8_t> encode(const std::vector<std::uint8_t>& plain, std::size_t element, bool compress) {
  const std::size_t count = plain.size() / element;
  std::vector<std::uint8_t> shuffled(plain);
  for (std::size_t i = 0; i < count; ++i)
    for (std::size_t j = 0; j < element; ++j) shuffled[j * count + i] = plain[i * element + j];
  std::vector<std::uint8_t> out = shuffled;
  if (compress) {
    uLongf n = compressBound(shuffled.size());
    out.resize(n);
    EXPECT_EQ(compress2(out.data(), &n, shuffled.data(), shuffled.size(), 1), Z_OK);
    out.resize(n);
  }
  const std::uint32_t sum = fletcher32(out.data(), out.size());
  for (int k = 0; k < 4; ++k) out.push_back(static_cast<std::uint8_t>(sum >> (8 * k)));
  return out;
}
}  // namespace

// Fletcher-32 equals its definition: sums of 16-bit big-endian words and of
// their running sums, modulo 65535 (the folded form may write 0 as 0xffff).
TEST(H5Chunks, Fletcher32EqualsTheModularDefinition) {
  for (std::size_t n : {0u, 1u, 2u, 3u, 719u, 720u, 721u, 5000u, 65536u}) {
    const auto data = random_bytes(n, static_cast<unsigned>(n) + 1);
    std::uint64_t s1 = 0, s2 = 0;
    for (std::size_t i = 0; i < n; i += 2) {
      const std::uint64_t word = (static_cast<std::uint64_t>(data[i]) << 8) | (i + 1 < n ? data[i + 1] : 0);
      s1 = (s1 + word) % 65535;
      s2 = (s2 + s1) % 65535;
    }
    const std::uint32_t got = fletcher32(data.data(), n);
    EXPECT_EQ((got & 0xffff) % 65535, s1) << n;
    EXPECT_EQ((got >> 16) % 65535, s2) << n;
  }
}

// A chunk encoded by zlib and a hand shuffle decodes to its bytes, for element
// sizes 1, 2 and 4, compressed or stored (deflate's mask bit set).
TEST(H5Chunks, DecodesShuffledDeflatedChunks) {
  for (std::size_t element : {1u, 2u, 4u})
    for (bool compress : {true, false}) {
      const auto plain = random_bytes(32 * 32 * 8 * element, static_cast<unsigned>(element * 7 + compress));
      const std::uint32_t mask = compress ? 0u : 1u << 1;
      EXPECT_EQ(bytes(decode_chunk(encode(plain, element, compress), mask, ChunkFilters{}, plain.size(), element)), plain);
    }
}

// A flipped byte fails the checksum; a wrong size or a broken stream is refused.
TEST(H5Chunks, DamagedChunksAreRefused) {
  const auto plain = random_bytes(4096, 3);
  auto stored = encode(plain, 2, true);
  for (std::size_t at : {std::size_t{0}, stored.size() / 2, stored.size() - 1}) {
    auto bad = stored;
    bad[at] ^= 0x10;
    EXPECT_THROW(decode_chunk(bad, 0, ChunkFilters{}, plain.size(), 2), std::runtime_error) << at;
  }
  EXPECT_THROW(decode_chunk(stored, 0, ChunkFilters{}, plain.size() + 2, 2), std::runtime_error);
  ChunkFilters unchecked{true, true, false, 0, 1, -1};
  std::vector<std::uint8_t> no_sum(stored.begin(), stored.end() - 4);
  EXPECT_EQ(bytes(decode_chunk(no_sum, 0, unchecked, plain.size(), 2)), plain);
  no_sum[no_sum.size() / 2] ^= 0xff;
  no_sum.resize(no_sum.size() - 3);
  EXPECT_THROW(decode_chunk(no_sum, 0, unchecked, plain.size(), 2), std::runtime_error);
}

// The memory cache admits chunks until its budget is full and keeps them.
TEST(H5Chunks, CacheKeepsWhatFits) {
  DecodedChunks cache(10);
  auto chunk = [](std::size_t n) { return std::make_shared<const Bytes>(n, 1); };
  cache.offer(1, chunk(6));
  cache.offer(2, chunk(6));  // does not fit beside the first
  cache.offer(3, chunk(4));
  EXPECT_NE(cache.find(1), nullptr);
  EXPECT_EQ(cache.find(2), nullptr);
  EXPECT_NE(cache.find(3), nullptr);
  EXPECT_EQ(cache.bytes(), 10u);
  DecodedChunks off(0);
  off.offer(1, chunk(1));
  EXPECT_EQ(off.find(1), nullptr);
}

}  // namespace umrflow::io
