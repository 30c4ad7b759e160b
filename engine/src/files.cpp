#include "umrflow/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace umrflow {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + " '" + path + "': " + std::strerror(errno));
}

void sync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) fail("cannot open", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0 && !(directory && (errno == EINVAL || errno == EBADF))) fail("cannot sync", path);
}

}  // namespace

void commit_file(const std::string& tmp, const std::string& path) {
  sync_path(tmp, false);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename '" + tmp + "' to", path);
  const std::string folder = fs::path(path).parent_path().string();
  sync_path(folder.empty() ? "." : folder, true);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  write_temporary_file(tmp, bytes);
  commit_file(tmp, path);
}

void write_temporary_file(const std::string& tmp, const std::string& bytes) {
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write", tmp);
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0;
  const int saved = errno;
  if (std::fclose(f) != 0 || !written) {
    errno = written ? errno : saved;
    std::remove(tmp.c_str());
    fail("writing failed (disk full?) for", tmp);
  }
}

std::string json_quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

ScratchFolder::ScratchFolder(const std::string& prefix) {
  std::error_code ec;
  const fs::path base = fs::temp_directory_path(ec);
  if (ec) {
    const char* env = std::getenv("TMPDIR");
    throw std::runtime_error("cannot make a scratch folder: the temporary directory" +
                             (env ? " (TMPDIR='" + std::string(env) + "')" : std::string()) + " is not usable: " + ec.message());
  }
  std::string name = (base / (prefix + "XXXXXX")).string();
  if (!::mkdtemp(name.data())) fail("cannot make the scratch folder", (base / (prefix + "XXXXXX")).string());
  path_ = name;
}

ScratchFolder::~ScratchFolder() {
  std::error_code ec;
  if (!keep_) fs::remove_all(path_, ec);
}

}  // namespace umrflow
