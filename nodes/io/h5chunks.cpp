#include "io/h5chunks.h"

#include <cstring>
#include <stdexcept>

#ifdef UMRFLOW_HAVE_LIBDEFLATE
#include <libdeflate.h>
#else
#include <zlib.h>
#endif

namespace umrflow::io {

std::uint32_t fletcher32(const std::uint8_t* data, std::size_t n) {
  std::uint32_t sum1 = 0, sum2 = 0;
  std::size_t words = n / 2;
  while (words > 0) {
    // 360 words keep both sums below 2^32 before folding.
    std::size_t block = words > 360 ? 360 : words;
    words -= block;
    for (; block > 0; --block, data += 2) {
      sum1 += (static_cast<std::uint32_t>(data[0]) << 8) | data[1];
      sum2 += sum1;
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  if (n % 2) {
    sum1 += static_cast<std::uint32_t>(data[0]) << 8;
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return (sum2 << 16) | sum1;
}

namespace {

void inflate_zlib(const std::uint8_t* in, std::size_t n, std::uint8_t* out, std::size_t out_bytes) {
#ifdef UMRFLOW_HAVE_LIBDEFLATE
  struct Free {
    void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
  };
  thread_local std::unique_ptr<libdeflate_decompressor, Free> d(libdeflate_alloc_decompressor());
  if (!d) throw std::runtime_error("out of memory for a decompressor");
  std::size_t got = 0;
  if (libdeflate_zlib_decompress(d.get(), in, n, out, out_bytes, &got) != LIBDEFLATE_SUCCESS || got != out_bytes)
    throw std::runtime_error("a chunk does not inflate to its size");
#else
  uLongf got = out_bytes;
  if (uncompress(out, &got, in, n) != Z_OK || got != out_bytes) throw std::runtime_error("a chunk does not inflate to its size");
#endif
}

}  // namespace

Bytes decode_chunk(const std::vector<std::uint8_t>& stored, std::uint32_t filter_mask,
                                       const ChunkFilters& filters, std::size_t out_bytes, std::size_t element_size) {
  auto applied = [&](bool present, int bit) { return present && !(filter_mask >> bit & 1u); };
  std::size_t n = stored.size();
  if (applied(filters.fletcher32, filters.fletcher_bit)) {
    if (n < 4) throw std::runtime_error("a chunk is shorter than its checksum");
    n -= 4;
    const std::uint8_t* c = stored.data() + n;
    const std::uint32_t kept = c[0] | c[1] << 8 | c[2] << 16 | static_cast<std::uint32_t>(c[3]) << 24;
    const std::uint32_t sum = fletcher32(stored.data(), n);
    // HDF5 also accepts the checksum with the bytes of each 16-bit half swapped (files of old releases).
    const std::uint32_t swapped = (sum & 0xff00ff00u) >> 8 | (sum & 0x00ff00ffu) << 8;
    if (kept != sum && kept != swapped) throw std::runtime_error("a chunk fails its checksum");
  }
  const bool shuffled = applied(filters.shuffle, filters.shuffle_bit) && element_size >= 2;
  // Unshuffled data goes straight to the result; shuffled data to a scratch buffer of this thread first.
  thread_local Bytes scratch;
  Bytes out(out_bytes);
  Bytes& plain = shuffled ? scratch : out;
  plain.resize(out_bytes);
  if (applied(filters.deflate, filters.deflate_bit)) {
    inflate_zlib(stored.data(), n, plain.data(), out_bytes);
  } else {
    if (n != out_bytes) throw std::runtime_error("an uncompressed chunk has the wrong size");
    std::memcpy(plain.data(), stored.data(), n);
  }
  if (!shuffled) return out;
  // Shuffled: byte j of element i sits at j * count + i; bytes past count * size stay put.
  const std::size_t count = out_bytes / element_size;
  if (element_size == 2) {  // the common case (int16 images), in a form the compiler vectorises
    const std::uint8_t *lo = plain.data(), *hi = plain.data() + count;
    for (std::size_t i = 0; i < count; ++i) {
      out[2 * i] = lo[i];
      out[2 * i + 1] = hi[i];
    }
  } else {
    for (std::size_t j = 0; j < element_size; ++j) {
      const std::uint8_t* src = plain.data() + j * count;
      for (std::size_t i = 0; i < count; ++i) out[i * element_size + j] = src[i];
    }
  }
  std::memcpy(out.data() + count * element_size, plain.data() + count * element_size, out_bytes - count * element_size);
  return out;
}

DecodedChunks::Chunk DecodedChunks::find(std::uint64_t key) const {
  if (budget_ == 0) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = chunks_.find(key);
  return it == chunks_.end() ? nullptr : it->second;
}

void DecodedChunks::offer(std::uint64_t key, const Chunk& chunk) {
  if (!chunk || chunk->size() > budget_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (bytes_ + chunk->size() > budget_) return;
  if (chunks_.emplace(key, chunk).second) bytes_ += chunk->size();
}

std::size_t DecodedChunks::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

}  // namespace umrflow::io
