#include "test_util.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "builtin.h"
#include "test_paths.h"

namespace umrflow::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device rd;
  for (;;) {
    fs::path p = fs::temp_directory_path() / ("umrflow_test_" + std::to_string(rd()));
    if (fs::create_directory(p)) {
      path_ = p.string();
      return;
    }
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  fs::path p = fs::path(path_) / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
  return p.string();
}

std::pair<int, int> position_of(const std::string& text, const std::string& needle, int nth) {
  std::size_t pos = text.find(needle);
  for (int i = 0; i < nth && pos != std::string::npos; ++i) pos = text.find(needle, pos + 1);
  if (pos == std::string::npos) return {-1, -1};
  int line = 1, col = 1;
  for (std::size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

const Diagnostic* find_diagnostic(const Diagnostics& diags, const std::string& fragment) {
  for (const auto& d : diags.items())
    if (d.message.find(fragment) != std::string::npos) return &d;
  return nullptr;
}

Registry builtin_registry() {
  Registry r;
  register_builtin_nodes(r);
  return r;
}

Diagnostics validate_text(const std::string& yaml, const Registry& registry, std::string* file) {
  TempDir dir;
  const std::string path = dir.write("graph.yaml", yaml);
  if (file) *file = path;
  try {
    build_graph(load_graph_doc(path), path, registry);
  } catch (const GraphError& e) {
    return e.diagnostics();
  }
  return {};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes; }

int run_command(const std::string& command, std::string* output) {
  std::string full = command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) return -1;
  char buf[4096];
  std::string out;
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  int status = pclose(pipe);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const std::string& phantom_root() {
  static TempDir dir;
  static const std::string root = [] {
    const std::string r = dir.path() + "/ph";
    const std::string bin = UMRFLOW_BINARY;
    std::string out;
    if (run_command(bin + " synth brats --cases 3 --size 16 --out " + r + " 2>&1", &out) != 0 ||
        run_command(bin + " split --from " + r + " --val 0.34 --test 0 --out " + r + "/split.yaml 2>&1", &out) != 0)
      throw std::runtime_error("cannot make phantoms: " + out);
    return r;
  }();
  return root;
}

}  // namespace umrflow::test
