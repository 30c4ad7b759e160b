// h5chunks.h: decoding HDF5 chunks outside the library. A thread-safe HDF5
// build runs one library call at a time, inflation included; the cache reader
// fetches a chunk's stored bytes with H5Dread_chunk (brief, under HDF5's lock)
// and undoes the filters here, on the calling thread, so data-plane threads
// decode in parallel.
//
// Supported pipeline, the one `umrflow convert brats` writes, in write order:
// shuffle, deflate (zlib format), Fletcher-32. A bit set in a chunk's filter
// mask means HDF5 skipped that filter when it wrote the chunk (deflate is
// optional: a chunk that does not shrink is stored uncompressed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace umrflow::io {

/// HDF5's Fletcher-32 over `n` bytes (16-bit big-endian words, an odd last byte
/// as the high half of a word), as its checksum filter computes it.
std::uint32_t fletcher32(const std::uint8_t* data, std::size_t n);

/// Bytes that a resize leaves uninitialised (a decoded chunk is written whole
/// right after; zero-filling it first would be a wasted pass).
template <class T>
struct UninitialisedAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitialisedAllocator<U>;
  };
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
using Bytes = std::vector<std::uint8_t, UninitialisedAllocator<std::uint8_t>>;

/// The filters of a chunk, by position in the write order.
struct ChunkFilters {
  bool shuffle = true, deflate = true, fletcher32 = true;
  /// Position of each in the pipeline (its bit in a chunk's filter mask).
  int shuffle_bit = 0, deflate_bit = 1, fletcher_bit = 2;
};

/// Undoes `filters` on one stored chunk (`stored`, as H5Dread_chunk returns it,
/// with its filter mask) into exactly `out_bytes` bytes of elements of
/// `element_size` bytes. Throws std::runtime_error on a checksum mismatch, a
/// stream that does not inflate, or a size other than `out_bytes`.
Bytes decode_chunk(const std::vector<std::uint8_t>& stored, std::uint32_t filter_mask,
                                       const ChunkFilters& filters, std::size_t out_bytes, std::size_t element_size);

/// Decoded chunks kept in memory up to a byte budget. Chunks are admitted until
/// the budget is full and then kept (no eviction): an epoch visits every case,
/// and an LRU cache smaller than the data set would miss on every visit, while
/// this one serves the share that fits. Thread-safe.
class DecodedChunks {
 public:
  using Chunk = std::shared_ptr<const Bytes>;
  explicit DecodedChunks(std::size_t budget_bytes) : budget_(budget_bytes) {}

  /// The chunk stored under `key`, or null.
  Chunk find(std::uint64_t key) const;
  /// Keeps `chunk` under `key` when it fits in what is left of the budget.
  void offer(std::uint64_t key, const Chunk& chunk);
  std::size_t bytes() const;
  std::size_t budget() const { return budget_; }

 private:
  std::size_t budget_;
  mutable std::mutex mutex_;
  std::size_t bytes_ = 0;
  std::unordered_map<std::uint64_t, Chunk> chunks_;
};

}  // namespace umrflow::io
