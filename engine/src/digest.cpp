#include "umrflow/digest.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "umrflow/files.h"

namespace umrflow {

namespace {

constexpr std::array<std::uint32_t, 64> kRound = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

/// Incremental SHA-256: add() any number of times, then hex().
class Sha256 {
 public:
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    length_ += n;
    while (n > 0) {
      const std::size_t take = std::min(n, block_.size() - used_);
      std::memcpy(block_.data() + used_, p, take);
      used_ += take;
      p += take;
      n -= take;
      if (used_ == block_.size()) compress();
    }
  }

  std::string hex() {
    const std::uint64_t bits = length_ * 8;
    const std::uint8_t one = 0x80, zero = 0;
    add(&one, 1);
    while (used_ != 56) add(&zero, 1);
    for (int k = 7; k >= 0; --k) {
      const auto b = static_cast<std::uint8_t>(bits >> (8 * k));
      add(&b, 1);
    }
    std::string out;
    char buf[9];
    for (std::uint32_t h : state_) {
      std::snprintf(buf, sizeof buf, "%08x", h);
      out += buf;
    }
    return out;
  }

 private:
  void compress() {
    std::uint32_t w[64];
    for (int t = 0; t < 16; ++t)
      w[t] = std::uint32_t{block_[4 * t]} << 24 | std::uint32_t{block_[4 * t + 1]} << 16 | std::uint32_t{block_[4 * t + 2]} << 8 |
             block_[4 * t + 3];
    for (int t = 16; t < 64; ++t) {
      const std::uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const std::uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    std::array<std::uint32_t, 8> v = state_;
    for (int t = 0; t < 64; ++t) {
      const std::uint32_t e = v[4], a = v[0];
      const std::uint32_t t1 = v[7] + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & v[5]) ^ (~e & v[6])) + kRound[t] + w[t];
      const std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & v[1]) ^ (a & v[2]) ^ (v[1] & v[2]));
      for (int k = 7; k > 0; --k) v[k] = v[k - 1];
      v[4] += t1;
      v[0] = t1 + t2;
    }
    for (int k = 0; k < 8; ++k) state_[k] += v[k];
    used_ = 0;
  }

  std::array<std::uint32_t, 8> state_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<std::uint8_t, 64> block_{};
  std::size_t used_ = 0;
  std::uint64_t length_ = 0;
};

struct LedgerLine {
  std::string digest, name;
};

std::vector<LedgerLine> read_ledger(const std::string& ledger) {
  std::vector<LedgerLine> out;
  std::ifstream in(ledger);
  if (!in) return out;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (line.empty()) continue;
    const bool ok = line.size() > 66 && line.compare(64, 2, "  ") == 0 &&
                    line.find_first_not_of("0123456789abcdef") == 64;
    if (!ok)
      throw std::runtime_error(ledger + ":" + std::to_string(number) +
                               ": not a sha256sum line ('<64 hex digits>  <file>'); repair it or delete the file to stop the check");
    out.push_back({line.substr(0, 64), line.substr(66)});
  }
  return out;
}

}  // namespace

std::string sha256_hex(const void* data, std::size_t n) {
  Sha256 h;
  h.add(data, n);
  return h.hex();
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.add(buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error("reading '" + path + "' failed");
  return h.hex();
}

std::string digest_ledger_for(const std::string& checkpoint) {
  return (std::filesystem::path(checkpoint).parent_path() / "checksums.sha256").string();
}

void record_digest(const std::string& checkpoint, const std::string& digest, bool keep_previous) {
  const std::string ledger = digest_ledger_for(checkpoint);
  const std::string name = std::filesystem::path(checkpoint).filename().string();
  std::string text;
  for (const auto& l : read_ledger(ledger))
    if (l.name != name || (keep_previous && l.digest != digest)) text += l.digest + "  " + l.name + "\n";
  text += digest + "  " + name + "\n";
  write_file_atomically(ledger, text);
}

void forget_digest(const std::string& checkpoint) {
  const std::string ledger = digest_ledger_for(checkpoint);
  if (!std::filesystem::exists(ledger)) return;
  const std::string name = std::filesystem::path(checkpoint).filename().string();
  std::string text;
  bool listed = false;
  for (const auto& l : read_ledger(ledger)) {
    if (l.name == name) listed = true;
    else text += l.digest + "  " + l.name + "\n";
  }
  if (listed) write_file_atomically(ledger, text);
}

bool check_recorded_digest(const std::string& checkpoint) {
  const std::string ledger = digest_ledger_for(checkpoint);
  if (!std::filesystem::exists(ledger)) return false;
  const std::string name = std::filesystem::path(checkpoint).filename().string();
  bool listed = false;
  std::string digest;
  for (const auto& l : read_ledger(ledger)) {
    if (l.name != name) continue;
    listed = true;
    if (digest.empty()) digest = sha256_file(checkpoint);
    if (l.digest == digest) return true;
  }
  if (!listed) return false;
  throw std::runtime_error("'" + checkpoint + "' does not match its SHA-256 in " + ledger +
                           ": the file changed after the run wrote it (damaged disk or copy?)");
}

}  // namespace umrflow
