#include "common.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "umrflow/plugin.h"

namespace fs = std::filesystem;

namespace umrflow::cli {

void load_command_line_plugins(Registry& registry, const std::vector<std::string>& cli_plugins) {
  for (const auto& p : cli_plugins) load_plugin(p, registry);
  for (const auto& entry : plugin_paths_from_environment()) {
    if (fs::is_directory(entry)) {
      std::vector<std::string> libs;
      for (const auto& f : fs::directory_iterator(entry))
        if (f.path().extension() == ".so" && f.path().filename().string().rfind("lib", 0) == 0) libs.push_back(f.path().string());
      std::sort(libs.begin(), libs.end());
      for (const auto& l : libs) load_plugin(l, registry);
    } else {
      load_plugin(entry, registry);
    }
  }
}

ParamSpec set_option() {
  return param::texts("set", std::vector<std::string>{},
                      "override PATH=VALUE before validation, e.g. train.epochs=3 or data.noise.std=0.2 (repeatable)");
}

Graph load_and_validate(const std::string& path, const std::vector<std::string>& overrides, Registry& registry,
                        const LoadChecks& checks) {
  return load_graph(path, overrides, registry, checks);
}

int report(const std::exception& e) {
  std::string msg = readable_error(e.what());  // no libtorch backtrace, a hint when memory ran out
  if (const auto* g = dynamic_cast<const GraphError*>(&e)) {
    std::fprintf(stderr, "%s\n%zu error%s; nothing was run.\n", msg.c_str(), g->diagnostics().size(),
                 g->diagnostics().size() == 1 ? "" : "s");
  } else {
    std::fprintf(stderr, "error: %s\n", msg.c_str());
  }
  return 1;
}

}  // namespace umrflow::cli
