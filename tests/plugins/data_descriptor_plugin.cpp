// A library that exports `umrflow_plugin_descriptor` as data, not as the
// function UMRFLOW_PLUGIN defines: the host must refuse it without calling it.
extern "C" __attribute__((visibility("default"))) const unsigned char umrflow_plugin_descriptor[64] = {0xFF};
