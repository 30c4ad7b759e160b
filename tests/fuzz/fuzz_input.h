// fuzz_input.h: what the file-reading fuzz targets share: the input written to
// a file of this process (the readers under test take paths).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace umrflow::fuzz {

/// Writes `data` to /dev/shm (or /tmp) under a name unique to this process and
/// `suffix`; returns the path. The file is overwritten by the next input.
inline std::string as_file(const std::uint8_t* data, std::size_t size, const std::string& suffix) {
  static const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string path = dir + "/umrflow_fuzz_" + std::to_string(getpid()) + suffix;
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  return path;
}

}  // namespace umrflow::fuzz
