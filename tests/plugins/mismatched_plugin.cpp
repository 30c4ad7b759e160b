// A plugin whose ABI record names another libtorch: the host must refuse it
// before calling anything in it.
#include <umrflow/plugin.h>

namespace {
bool g_registered = false;
void register_nodes(umrflow::Registry&) { g_registered = true; }
}  // namespace

extern "C" __attribute__((visibility("default"))) const umrflow::PluginDescriptor* umrflow_plugin_descriptor() {
  static const umrflow::PluginDescriptor descriptor{
      umrflow::PluginAbi{UMRFLOW_PLUGIN_API_VERSION, "0.4.1", UMRFLOW_COMPILER_ID, _GLIBCXX_USE_CXX11_ABI}, "mismatched",
      &register_nodes};
  return &descriptor;
}

extern "C" __attribute__((visibility("default"))) bool mismatched_plugin_registered() { return g_registered; }
