// h5cache.h: the BraTS HDF5 cache: each case cropped to its brain box, stored
// chunked and compressed, read back as random crops through hyperslabs.
//
// Layout (plain HDF5; docs/datasets.md shows how to read it with h5py):
//   /                       attrs: format = "umrflow.brats-cache", version = 2,
//                                  modalities, regions (fixed-length strings)
//   /cases/<ID>/image       (M, x, y, z) int16 when every voxel is an integer in
//                           range, else float32; chunks (1, 32, 32, 32),
//                           shuffle + deflate level 1 + Fletcher32 checksum
//   (HDF5's newest file format: superblock and object headers checksummed.
//   Version 1 files, without checksums and with variable-length strings, load.)
//   /cases/<ID>/label       (R, x, y, z) uint8 region channels, same chunking
//   attrs of /cases/<ID>:   original_shape (3 x int64), box_start, box_stop
//                           (3 x int64, the brain box in original voxels,
//                           stop exclusive), affine (16 x float64, row-major)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "io/h5chunks.h"

namespace umrflow::io {

struct CachedCase {
  std::string id;
  std::vector<std::int64_t> original_shape, box_start, box_stop;
  std::vector<double> affine;
  std::vector<std::int64_t> stored_shape;  // (M, x, y, z) of /image
};

/// Writes a cache file. `next(i)` returns case i's image (M, X, Y, Z) float32,
/// label regions (R, X, Y, Z) uint8 and affine; the crop to the brain box is
/// done here. Written to OUT.tmp and renamed at the end, so an interrupted
/// conversion never leaves a file that looks complete.
struct CaseData {
  std::string id;
  torch::Tensor image, label;
  std::vector<double> affine;
};
void write_cache(const std::string& out, const std::vector<std::string>& modalities, const std::vector<std::string>& regions,
                 std::int64_t count, const std::function<CaseData(std::int64_t)>& next,
                 const std::function<void(std::int64_t, std::int64_t)>& progress = {});

/// An open cache file. Reads may come from several threads: HDF5 serialises
/// its own calls, so a read fetches the window's stored chunks from HDF5 and
/// decodes them on the calling thread (io/h5chunks.h), in parallel with other
/// readers. Decoded chunks are kept in memory up to `memory_budget` bytes.
class CacheReader {
 public:
  /// Opens and checks the file; throws std::runtime_error naming it when it is
  /// missing, truncated, not HDF5 or not a umrflow cache.
  explicit CacheReader(const std::string& path, std::size_t memory_budget = 0);
  ~CacheReader();
  CacheReader(const CacheReader&) = delete;
  CacheReader& operator=(const CacheReader&) = delete;

  const std::vector<CachedCase>& cases() const { return cases_; }
  const std::vector<std::string>& modalities() const { return modalities_; }
  const std::vector<std::string>& regions() const { return regions_; }

  /// Reads [start, start + size) of the stored (cropped) arrays of case `i`, per
  /// spatial axis; parts outside the stored box are zero. Returns float32 image
  /// and uint8 label.
  /// Datasets whose filters or types the chunk decoder does not know are read
  /// through HDF5 instead (`read_by_hyperslab`), with the same result.
  std::pair<torch::Tensor, torch::Tensor> read(std::size_t i, const std::vector<std::int64_t>& start,
                                               const std::vector<std::int64_t>& size) const;
  /// The same window read by HDF5 itself (a hyperslab, converted by HDF5).
  std::pair<torch::Tensor, torch::Tensor> read_by_hyperslab(std::size_t i, const std::vector<std::int64_t>& start,
                                                            const std::vector<std::int64_t>& size) const;
  /// Bytes of decoded chunks held in memory.
  std::size_t memory_cached() const { return decoded_.bytes(); }

 private:
  torch::Tensor read_dataset(std::size_t i, int which, const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& size,
                             bool by_chunks) const;

  std::string path_;
  std::int64_t file_ = -1;
  mutable DecodedChunks decoded_;
  std::vector<CachedCase> cases_;
  std::vector<std::string> modalities_, regions_;
};

}  // namespace umrflow::io
