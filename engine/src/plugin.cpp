#define BOOST_DLL_USE_STD_FS
#include "umrflow/plugin.h"

#include <boost/dll/shared_library.hpp>
#include <dlfcn.h>
#include <link.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace umrflow {

PluginAbi host_abi() { return UMRFLOW_PLUGIN_ABI_HERE; }

namespace {
std::string field(const char* s, std::size_t n) { return std::string(s, strnlen(s, n)); }

/// Whether the dynamic symbol at `address` is a function (calling data would crash).
bool is_function(const void* address) {
  Dl_info info;
  void* entry = nullptr;
  if (!dladdr1(address, &info, &entry, RTLD_DL_SYMENT) || !entry) return false;
  const auto* symbol = static_cast<const ElfW(Sym)*>(entry);
  const int type = ELF64_ST_TYPE(symbol->st_info);
  return type == STT_FUNC || type == STT_GNU_IFUNC;
}
}  // namespace

std::string describe_abi(const PluginAbi& abi) {
  return "plugin api " + std::to_string(abi.api_version) + ", libtorch " +
         field(abi.torch_version, sizeof abi.torch_version) + ", " + field(abi.compiler, sizeof abi.compiler) +
         ", _GLIBCXX_USE_CXX11_ABI=" + std::to_string(abi.cxx11_abi);
}

std::string abi_mismatch(const PluginAbi& plugin, const PluginAbi& host) {
  auto differ = [](const std::string& what, const std::string& p, const std::string& h) {
    return what + " differs: plugin built with " + p + ", this umrflow with " + h;
  };
  if (plugin.api_version != host.api_version)
    return differ("plugin API version", std::to_string(plugin.api_version), std::to_string(host.api_version));
  const std::string pt = field(plugin.torch_version, sizeof plugin.torch_version);
  const std::string ht = field(host.torch_version, sizeof host.torch_version);
  if (pt != ht) return differ("libtorch version", pt, ht);
  const std::string pc = field(plugin.compiler, sizeof plugin.compiler);
  const std::string hc = field(host.compiler, sizeof host.compiler);
  if (pc != hc) return differ("compiler", pc, hc);
  if (plugin.cxx11_abi != host.cxx11_abi)
    return differ("C++ ABI (_GLIBCXX_USE_CXX11_ABI)", std::to_string(plugin.cxx11_abi), std::to_string(host.cxx11_abi));
  return "";
}

void load_plugin(const std::string& path, Registry& registry) {
  // Loaded libraries stay loaded for the life of the process: node objects and
  // specs created by them must never outlive their code.
  static std::mutex mutex;
  static std::vector<std::pair<std::string, boost::dll::shared_library>> loaded;
  std::lock_guard<std::mutex> lock(mutex);

  auto register_into = [&](const PluginDescriptor* d) {
    // Another registry of this process may already hold the plugin's types.
    for (const auto& type : registry.types())
      if (registry.origin(type) == path) return;
    registry.set_origin(path);
    try {
      d->register_nodes(registry);
    } catch (...) {
      registry.set_origin("built-in");
      throw;
    }
    registry.set_origin("built-in");
  };
  std::error_code ec;
  const std::string canonical = std::filesystem::weakly_canonical(path, ec).string();
  for (auto& [p, lib] : loaded)
    if (p == canonical) {
      // Loaded before (for another registry): register its types into this one too.
      register_into(lib.get<const PluginDescriptor*()>("umrflow_plugin_descriptor")());
      return;
    }
  if (!std::filesystem::exists(path))
    throw std::runtime_error("plugin '" + path + "': no such file (check `plugins:`, --plugin or UMRFLOW_PLUGIN_PATH)");

  boost::dll::shared_library lib;
  try {
    lib.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_global);
  } catch (const std::exception& e) {
    throw std::runtime_error("plugin '" + path + "': cannot be loaded: " + e.what());
  }
  if (!lib.has("umrflow_plugin_descriptor"))
    throw std::runtime_error("plugin '" + path +
                             "': not an umrflow plugin (it exports no `umrflow_plugin_descriptor`; "
                             "end the plugin's source with UMRFLOW_PLUGIN(name, register_fn))");
  if (!is_function(&lib.get<const char>("umrflow_plugin_descriptor")))
    throw std::runtime_error("plugin '" + path +
                             "': exports `umrflow_plugin_descriptor` as data, not as the entry function; "
                             "define it with UMRFLOW_PLUGIN(name, register_fn) instead of by hand");
  auto entry = lib.get<const PluginDescriptor*()>("umrflow_plugin_descriptor");
  const PluginDescriptor* d = entry();
  if (!d) throw std::runtime_error("plugin '" + path + "': its entry point returned no descriptor");
  const std::string why = abi_mismatch(d->abi, host_abi());
  if (!why.empty())
    throw std::runtime_error("plugin '" + path + "' refused: " + why + ". Plugin: " + describe_abi(d->abi) +
                             "; host: " + describe_abi(host_abi()) + ". Rebuild the plugin against this umrflow.");
  register_into(d);
  loaded.emplace_back(canonical, std::move(lib));
}

std::vector<std::string> plugin_paths_from_environment() {
  std::vector<std::string> out;
  const char* env = std::getenv("UMRFLOW_PLUGIN_PATH");
  if (!env) return out;
  std::string s = env;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t colon = s.find(':', start);
    std::string part = s.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!part.empty()) out.push_back(part);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

}  // namespace umrflow
