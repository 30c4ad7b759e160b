// archive_check.h: integrity of torch archives (checkpoints, exported weights).
//
// A torch archive is a zip file whose records are stored uncompressed, each
// with the CRC-32 of its bytes in the zip's central directory. libtorch's
// reader does not compare them, so a flipped bit in a tensor record loads as a
// different weight. `check_zip_archive` reads every record and compares.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace umrflow {

struct ArchiveCheck {
  std::int64_t records = 0;   // entries in the central directory
  std::int64_t verified = 0;  // stored records whose CRC-32 matched
  std::int64_t bytes = 0;     // bytes of record data read
  std::vector<std::string> names;  // the records' names, in directory order
};

/// CRC-32 (the zip / zlib polynomial 0xEDB88320) of `n` bytes, continuing `crc`.
std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t n);

/// Reads the zip at `path` and checks each record's CRC-32 and extent. Throws
/// std::runtime_error naming the file and the first damaged record (or what
/// makes it no zip at all). Compressed records, which torch never writes, are
/// counted but not verified, except that a deflated record must not declare
/// more bytes than deflate can produce from its size, and any other method is
/// refused. A zip64 end record is followed whenever its locator is present.
ArchiveCheck check_zip_archive(const std::string& path);

/// Whether the file starts as a zip archive does ("PK"): a damaged zip is
/// reported by check_zip_archive, anything else as another format.
bool starts_like_zip(const std::string& path);

/// Whether libtorch may load the file at `path` as umrflow weights of module
/// `module`, as far as that shows without libtorch: a regular file (a folder is
/// named as such); a zip whose records pass check_zip_archive; written by
/// libtorch (a PyTorch state dict written by torch.save, which lacks
/// TorchScript's constants.pkl, is named, with the `umrflow weights import`
/// command that converts it); its digest the one its run's checksums.sha256
/// lists (check_recorded_digest). Throws std::runtime_error naming the file.
/// What a run checks before it loads init.from, and `umrflow validate` too.
void check_weights_file(const std::string& path, const std::string& module);

}  // namespace umrflow
