// umrflow/plugin.h: how a shared library adds node types.
//
// A plugin exports exactly one C-named function, `umrflow_plugin_descriptor`,
// that returns a PluginDescriptor: an ABI record and a function that registers
// the plugin's node types with the registry the host passes in. Write it with
// the macro:
//
//   static void register_nodes(umrflow::Registry& registry) { registry.add(...); }
//   UMRFLOW_PLUGIN("cube_cutout", register_nodes)
//
// The host reads the record before calling anything else and refuses the
// library when a field differs from its own (plugin API version, libtorch
// version, compiler, C++ standard-library ABI), with a message that names both
// sides: nodes built against another libtorch or C++ ABI would pass tensors
// and strings across an incompatible boundary. Libraries are never unloaded
// while the process runs.
#pragma once

#include <string>

#include <torch/version.h>

#include "umrflow/registry.h"

/// Bumped whenever a public header changes in a way that breaks plugins.
#define UMRFLOW_PLUGIN_API_VERSION 3

namespace umrflow {

/// Fixed-size C layout so that it can be read before trusting anything else.
struct PluginAbi {
  int api_version;
  char torch_version[32];
  char compiler[48];
  int cxx11_abi;
};

struct PluginDescriptor {
  PluginAbi abi;
  const char* name;
  void (*register_nodes)(Registry& registry);
};

#define UMRFLOW_DETAIL_STR2(x) #x
#define UMRFLOW_DETAIL_STR(x) UMRFLOW_DETAIL_STR2(x)
#if defined(__clang__)
#define UMRFLOW_COMPILER_ID "clang " UMRFLOW_DETAIL_STR(__clang_major__)
#elif defined(__GNUC__)
#define UMRFLOW_COMPILER_ID "gcc " UMRFLOW_DETAIL_STR(__GNUC__)
#else
#define UMRFLOW_COMPILER_ID "unknown"
#endif

/// The ABI record of whatever translation unit expands it.
#define UMRFLOW_PLUGIN_ABI_HERE \
  umrflow::PluginAbi { UMRFLOW_PLUGIN_API_VERSION, TORCH_VERSION, UMRFLOW_COMPILER_ID, _GLIBCXX_USE_CXX11_ABI }

/// The host's own record (compiled into the engine library).
PluginAbi host_abi();
/// "api 1, libtorch 1.13.0, gcc 12, cxx11 abi 1".
std::string describe_abi(const PluginAbi& abi);
/// Empty when `plugin` can be loaded by a host with record `host`; otherwise
/// the reason, naming the field and both values.
std::string abi_mismatch(const PluginAbi& plugin, const PluginAbi& host);

/// Loads a plugin library into `registry`. Throws std::runtime_error naming the
/// path when the file cannot be loaded, lacks the entry point, or its ABI
/// record does not match the host's. Loading the same path twice is a no-op.
void load_plugin(const std::string& path, Registry& registry);

/// Splits UMRFLOW_PLUGIN_PATH (':'-separated) into paths; empty when unset.
std::vector<std::string> plugin_paths_from_environment();

}  // namespace umrflow

#define UMRFLOW_PLUGIN(plugin_name, register_fn)                                              \
  extern "C" __attribute__((visibility("default"))) const umrflow::PluginDescriptor*        \
  umrflow_plugin_descriptor() {                                                               \
    static const umrflow::PluginDescriptor descriptor{UMRFLOW_PLUGIN_ABI_HERE, plugin_name, \
                                                      &register_fn};                          \
    return &descriptor;                                                                       \
  }
