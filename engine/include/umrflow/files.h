// umrflow/files.h: writing files so that a crash never leaves a torn one.
//
// Every file umrflow writes that someone may read later (checkpoints, caches,
// reports, metrics, the checkpoint ledger) goes through a temporary file in the
// same folder (`path.tmp`), is flushed to disk (fsync), and is then renamed over
// `path`, and the folder is synced so the rename survives a power loss too. A
// reader or a crash sees the old file or the new one. Errors (disk full, no
// permission, a failed rename) throw std::runtime_error naming the file.
//
// This header has no dependency on torch.
#pragma once

#include <string>

namespace umrflow {

/// Writes `bytes` to `path` as described above.
void write_file_atomically(const std::string& path, const std::string& bytes);

/// The first half of write_file_atomically: writes `bytes` to `tmp` (created
/// or truncated) and flushes it; on an error (disk full) removes `tmp` and
/// throws naming it. For writers that must do something between writing and
/// renaming (the checkpoint ledger); commit_file() then puts it in place.
void write_temporary_file(const std::string& tmp, const std::string& bytes);

/// For writers that produce the temporary file themselves (torch archives,
/// HDF5): syncs `tmp`, renames it to `path`, syncs the folder.
void commit_file(const std::string& tmp, const std::string& path);

/// A fresh folder, readable by its owner only, in the temporary directory
/// (std::filesystem::temp_directory_path: $TMPDIR and its kin, else /tmp),
/// named `prefix` and six random characters; made when the object is and
/// removed with everything in it when the object goes, also while an
/// exception propagates (never throwing from there), unless keep() was called.
/// Throws std::runtime_error naming the folder (or $TMPDIR, when that is no
/// folder) when it cannot be made.
class ScratchFolder {
 public:
  explicit ScratchFolder(const std::string& prefix);
  ~ScratchFolder();
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const std::string& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

/// JSON string literal of `s` (quotes, backslashes and control characters escaped).
std::string json_quoted(const std::string& s);

}  // namespace umrflow
