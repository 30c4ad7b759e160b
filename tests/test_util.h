// test_util.h: helpers shared by the tests: temporary folders, graph files
// written from strings, and the location of a piece of text in them.
#pragma once

#include <string>
#include <utility>

#include "umrflow/diagnostics.h"
#include "umrflow/graph.h"
#include "umrflow/registry.h"

namespace umrflow::test {

/// A fresh, empty folder under the system temp directory, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  /// Writes `text` to `name` inside the folder; returns the full path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

/// 1-based line and column of the `nth` occurrence (0-based) of `needle` in `text`.
std::pair<int, int> position_of(const std::string& text, const std::string& needle, int nth = 0);

/// The diagnostic whose message contains `fragment`, or nullptr.
const Diagnostic* find_diagnostic(const Diagnostics& diags, const std::string& fragment);

/// Built-in registry.
Registry builtin_registry();

/// Validates `yaml` written to a temp file; returns the diagnostics (empty when valid).
Diagnostics validate_text(const std::string& yaml, const Registry& registry, std::string* file = nullptr);

/// A phantom BraTS data root (`umrflow synth brats`, 3 cases of 16^3) with its
/// split.yaml (2 train, 1 val), made once per test process.
const std::string& phantom_root();

/// The bytes of a file; empty when it cannot be read.
std::string read_file(const std::string& path);
/// Writes `bytes` to `path`, replacing it.
void write_file(const std::string& path, const std::string& bytes);

/// Runs a command through the shell; returns its exit status and fills `output`
/// with stdout and stderr together.
int run_command(const std::string& command, std::string* output);

}  // namespace umrflow::test
