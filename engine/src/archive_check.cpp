#include "umrflow/archive_check.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "umrflow/digest.h"

namespace umrflow {

namespace {

std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}

std::uint64_t le(const unsigned char* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct Reader {
  const std::string& path;
  std::ifstream in;
  std::uint64_t size = 0;

  [[noreturn]] void damaged(const std::string& what) const {
    throw std::runtime_error("'" + path + "' is damaged: " + what +
                             " (changed or cut short after it was written; use another copy or an earlier checkpoint)");
  }
  std::vector<unsigned char> read(std::uint64_t at, std::uint64_t n) {
    if (at > size || n > size - at) damaged("a zip structure points past the end of the file");
    std::vector<unsigned char> buf(n);
    in.seekg(static_cast<std::streamoff>(at));
    in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(n));
    if (!in) damaged("cannot read " + std::to_string(n) + " bytes at offset " + std::to_string(at));
    return buf;
  }
};

}  // namespace

std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t n) {
  static const auto table = make_table();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

ArchiveCheck check_zip_archive(const std::string& path) {
  if (std::filesystem::is_directory(path))
    throw std::runtime_error("'" + path + "' is a folder, not a checkpoint file (a run directory holds last.pt, best.pt and epoch_NNNN.pt)");
  Reader r{path, std::ifstream(path, std::ios::binary | std::ios::ate)};
  if (!r.in) throw std::runtime_error("cannot open '" + path + "'");
  r.size = static_cast<std::uint64_t>(r.in.tellg());
  if (r.size < 22) r.damaged("too short for a zip archive (" + std::to_string(r.size) + " bytes)");
  // End of central directory: the last signature PK\5\6 within the final 64 KiB + 22 bytes.
  const std::uint64_t tail_len = std::min<std::uint64_t>(r.size, 65557);
  const auto tail = r.read(r.size - tail_len, tail_len);
  std::int64_t eocd = -1;
  for (std::int64_t i = static_cast<std::int64_t>(tail_len) - 22; i >= 0; --i)
    if (le(&tail[i], 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd < 0) r.damaged("no zip end record (not a torch archive, or cut short)");
  const unsigned char* e = &tail[eocd];
  std::uint64_t count = le(e + 10, 2), dir_size = le(e + 12, 4), dir_at = le(e + 16, 4);
  const std::uint64_t eocd_at = r.size - tail_len + static_cast<std::uint64_t>(eocd);
  // A zip64 locator right before the end record is what readers follow (miniz,
  // which libtorch uses, and Python's zipfile), whatever the 32-bit fields say.
  const bool has_locator = eocd_at >= 20 && le(r.read(eocd_at - 20, 20).data(), 4) == 0x07064b50;
  if (has_locator || count == 0xFFFF || dir_size == 0xFFFFFFFF || dir_at == 0xFFFFFFFF) {  // zip64
    if (eocd_at < 20) r.damaged("zip64 locator missing");
    const auto loc = r.read(eocd_at - 20, 20);
    if (le(loc.data(), 4) != 0x07064b50) r.damaged("zip64 locator missing");
    const auto z = r.read(le(&loc[8], 8), 56);
    if (le(z.data(), 4) != 0x06064b50) r.damaged("zip64 end record missing");
    count = le(&z[32], 8);
    dir_size = le(&z[40], 8);
    dir_at = le(&z[48], 8);
  }
  if (count == 0) r.damaged("the archive lists no records");
  const auto dir = r.read(dir_at, dir_size);
  ArchiveCheck out;
  std::uint64_t pos = 0;
  std::vector<char> chunk(1 << 20);
  for (std::uint64_t k = 0; k < count; ++k) {
    if (pos + 46 > dir.size() || le(&dir[pos], 4) != 0x02014b50) r.damaged("central directory entry " + std::to_string(k) + " is broken");
    const unsigned char* h = &dir[pos];
    const std::uint64_t method = le(h + 10, 2), crc = le(h + 16, 4), name_len = le(h + 28, 2), extra_len = le(h + 30, 2),
                        comment_len = le(h + 32, 2);
    std::uint64_t packed = le(h + 20, 4), plain = le(h + 24, 4), local = le(h + 42, 4);
    if (pos + 46 + name_len + extra_len > dir.size()) r.damaged("central directory entry " + std::to_string(k) + " is cut short");
    const std::string name(reinterpret_cast<const char*>(h + 46), name_len);
    // zip64 sizes and offset live in extra field 0x0001, in this order, for each 0xFFFFFFFF above.
    for (std::uint64_t x = 0; x + 4 <= extra_len;) {
      const unsigned char* f = h + 46 + name_len + x;
      const std::uint64_t id = le(f, 2), len = le(f + 2, 2);
      if (id == 1) {
        std::uint64_t q = 4;
        for (std::uint64_t* v : {&plain, &packed, &local})
          if (*v == 0xFFFFFFFF && q + 8 <= 4 + len && x + q + 8 <= extra_len) {
            *v = le(f + q, 8);
            q += 8;
          }
      }
      x += 4 + len;
    }
    pos += 46 + name_len + extra_len + comment_len;
    const auto lh = r.read(local, 30);
    if (le(lh.data(), 4) != 0x04034b50) r.damaged("record '" + name + "' has no local header where the directory says");
    const std::uint64_t data_at = local + 30 + le(&lh[26], 2) + le(&lh[28], 2);
    if (data_at > r.size || packed > r.size - data_at) r.damaged("record '" + name + "' runs past the end of the file");
    ++out.records;
    out.names.push_back(name);
    // torch.save stores records uncompressed. A deflated one (re-zipped by
    // hand) is left to libtorch, which allocates its declared plain size up
    // front: that size must be one deflate can reach (at most ~1032:1).
    if (method == 8 && plain > 1032 * packed + 64)
      r.damaged("deflated record '" + name + "' declares " + std::to_string(plain) + " bytes from " + std::to_string(packed) +
                ", more than deflate can produce");
    if (method != 0 && method != 8) r.damaged("record '" + name + "' uses compression method " + std::to_string(method) +
                                              ", which torch archives never use");
    if (method != 0) continue;
    if (packed != plain) r.damaged("stored record '" + name + "' has two sizes");
    r.in.seekg(static_cast<std::streamoff>(data_at));
    std::uint32_t c = 0;
    for (std::uint64_t left = packed; left > 0;) {
      const auto n = static_cast<std::streamsize>(std::min<std::uint64_t>(left, chunk.size()));
      r.in.read(chunk.data(), n);
      if (!r.in) r.damaged("record '" + name + "' cannot be read");
      c = crc32_update(c, chunk.data(), static_cast<std::size_t>(n));
      left -= static_cast<std::uint64_t>(n);
    }
    if (c != crc) r.damaged("record '" + name + "' fails its CRC-32 check");
    ++out.verified;
    out.bytes += static_cast<std::int64_t>(packed);
  }
  return out;
}

bool starts_like_zip(const std::string& path) {
  char magic[2] = {};
  std::ifstream(path, std::ios::binary).read(magic, 2);
  return magic[0] == 'P' && magic[1] == 'K';
}

void check_weights_file(const std::string& path, const std::string& module) {
  const bool folder = std::filesystem::is_directory(path);  // check_zip_archive names it
  if (!folder && !std::filesystem::is_regular_file(path))
    throw std::runtime_error("'" + path + "' is not a regular file (a device or FIFO); name a checkpoint, e.g. runs/NAME/last.pt");
  if (!folder && !starts_like_zip(path))
    throw std::runtime_error("'" + path + "' is not a torch archive (a run checkpoint, or what `umrflow weights import` writes)");
  const ArchiveCheck archive = check_zip_archive(path);
  const std::string pickle = "constants.pkl";
  const bool libtorch = std::any_of(archive.names.begin(), archive.names.end(), [&](const std::string& n) {
    return n.size() >= pickle.size() && n.compare(n.size() - pickle.size(), pickle.size(), pickle) == 0;
  });
  if (!libtorch)
    throw std::runtime_error("'" + path + "' is no umrflow checkpoint but looks like a PyTorch state dict (torch.save); convert it with " +
                             "`umrflow weights import " + path + " OUT.pt --module " + module + "` and give OUT.pt as init.from");
  check_recorded_digest(path);
}

}  // namespace umrflow
