#include <gtest/gtest.h>

#include <cstdlib>

#include "test_paths.h"
#include "test_util.h"
#include "umrflow/doc.h"
#include "umrflow/node.h"
#include "umrflow/plugin.h"

namespace umrflow {

// The example plugin loads, registers its node under its own origin, and the
// node blanks exactly one cube of the requested side and records it.
TEST(Plugin, LoadsAndItsNodeRuns) {
  Registry r = test::builtin_registry();
  load_plugin(UMRFLOW_CUTOUT_PLUGIN, r);
  const NodeSpec* spec = r.find("mask.cube_cutout");
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(r.origin("mask.cube_cutout"), UMRFLOW_CUTOUT_PLUGIN);
  Diagnostics d;
  Params p = parse_params(parse_yaml("{count: 1, side: 4, fill: 0}", "p"), spec->params, {}, "cutout", d);
  ASSERT_TRUE(d.empty()) << d.str();
  auto node = spec->create(p);
  auto* sample_node = dynamic_cast<SampleNode*>(node.get());
  ASSERT_NE(sample_node, nullptr);
  Packet s;
  s.tensors["image"] = torch::ones({2, 16, 16, 16});
  Context ctx(5, 0, 3, "cut", true);
  sample_node->apply(s, ctx);
  const auto zeros = (s.at("image") == 0);
  EXPECT_EQ(zeros.sum().item<std::int64_t>(), 2 * 64);
  EXPECT_EQ(s.at("cutout_mask").sum().item<double>(), 64.0);
  EXPECT_TRUE(torch::equal(zeros[0], s.at("cutout_mask")[0].to(torch::kBool)));
  EXPECT_TRUE(torch::equal(zeros[0], zeros[1]));
  // Loading the same library again is a no-op, not a duplicate registration.
  EXPECT_NO_THROW(load_plugin(UMRFLOW_CUTOUT_PLUGIN, r));
}

// A plugin whose ABI record differs is refused before it registers anything,
// and the message names both sides.
TEST(Plugin, MismatchedAbiIsRefused) {
  Registry r = test::builtin_registry();
  const auto before = r.types();
  try {
    load_plugin(UMRFLOW_MISMATCHED_PLUGIN, r);
    FAIL() << "expected the plugin to be refused";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("libtorch version differs: plugin built with 0.4.1, this umrflow with " TORCH_VERSION), std::string::npos) << m;
    EXPECT_NE(m.find(UMRFLOW_MISMATCHED_PLUGIN), std::string::npos);
  }
  EXPECT_EQ(r.types(), before);
}

// A library exporting the descriptor's name as data is refused before anything
// in it is called (calling data would crash the host).
TEST(Plugin, DataDescriptorIsRefused) {
  Registry r = test::builtin_registry();
  try {
    load_plugin(UMRFLOW_DATA_DESCRIPTOR_PLUGIN, r);
    FAIL() << "expected the plugin to be refused";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("as data, not as the entry function"), std::string::npos) << m;
    EXPECT_NE(m.find(UMRFLOW_DATA_DESCRIPTOR_PLUGIN), std::string::npos) << m;
  }
}

// Each field of the ABI record is compared.
TEST(Plugin, AbiRecordFields) {
  const PluginAbi host = host_abi();
  EXPECT_EQ(abi_mismatch(host, host), "");
  PluginAbi p = host;
  p.api_version += 1;
  EXPECT_NE(abi_mismatch(p, host).find("plugin API version"), std::string::npos);
  p = host;
  p.cxx11_abi = !host.cxx11_abi;
  EXPECT_NE(abi_mismatch(p, host).find("_GLIBCXX_USE_CXX11_ABI"), std::string::npos);
  p = host;
  std::snprintf(p.compiler, sizeof p.compiler, "clang 99");
  EXPECT_NE(abi_mismatch(p, host).find("compiler differs: plugin built with clang 99"), std::string::npos);
  EXPECT_NE(describe_abi(host).find("libtorch " TORCH_VERSION), std::string::npos);
}

// A library without the entry point, or no file at all, is a clear error.
TEST(Plugin, NotAPluginOrMissing) {
  Registry r;
  try {
    load_plugin(UMRFLOW_ENGINE_LIBRARY, r);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not an umrflow plugin"), std::string::npos);
  }
  try {
    load_plugin("/nonexistent/libx.so", r);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos);
  }
}

// UMRFLOW_PLUGIN_PATH is split on ':' with empty parts ignored.
TEST(Plugin, EnvironmentPath) {
  setenv("UMRFLOW_PLUGIN_PATH", "/a/liba.so::/b", 1);
  EXPECT_EQ(plugin_paths_from_environment(), (std::vector<std::string>{"/a/liba.so", "/b"}));
  unsetenv("UMRFLOW_PLUGIN_PATH");
  EXPECT_TRUE(plugin_paths_from_environment().empty());
}

// A graph names its plugins relative to its own file, and validation then
// knows the plugin's node types.
TEST(Plugin, GraphPluginsAreResolvedAndValidated) {
  test::TempDir dir;
  const std::string graph = std::string("umrflow: 1\nplugins: [") + UMRFLOW_CUTOUT_PLUGIN +
                            "]\ndata:\n  - {id: s, type: synthetic.tensors, count: 4}\n"
                            "  - {id: cut, type: mask.cube_cutout, in: s, side: 2}\n  - {id: batch, type: batch, in: cut}\n";
  const std::string path = dir.write("g.yaml", graph);
  Doc doc = load_graph_doc(path);
  Registry r = test::builtin_registry();
  for (const auto& p : plugin_list(doc, path)) load_plugin(p, r);
  Graph g = build_graph(doc, path, r);
  EXPECT_EQ(g.batch().provides.at("cutout_mask"), -1);
  EXPECT_EQ(g.data[1].type, "mask.cube_cutout");
  Doc rel = parse_yaml("plugins: [libs/libx.so]\n", dir.path() + "/sub/g.yaml");
  EXPECT_EQ(plugin_list(rel, "")[0], dir.path() + "/sub/libs/libx.so");
}

}  // namespace umrflow
