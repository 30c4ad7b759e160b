#include <gtest/gtest.h>

#include "test_util.h"
#include "umrflow/node.h"
#include "umrflow/registry.h"

namespace umrflow {

namespace {
NodeSpec sample_spec(const std::string& type) {
  NodeSpec s;
  s.type = type;
  s.kind = NodeKind::sample;
  s.inputs = {PortSpec{"in", {}, ""}};
  s.create = [](const Params&) -> std::unique_ptr<Node> { return nullptr; };
  return s;
}
}  // namespace

// A type registered twice is refused with both origins named.
TEST(Registry, RefusesDuplicates) {
  Registry r;
  r.add(sample_spec("x.y"));
  r.set_origin("libother.so");
  try {
    r.add(sample_spec("x.y"));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("built-in and by libother.so"), std::string::npos);
  }
}

// Malformed declarations are refused at registration, not at run time.
TEST(Registry, RefusesMalformedSpecs) {
  Registry r;
  NodeSpec bad_default = sample_spec("a");
  bad_default.params = {param::number("p", 2.0, "prob").range(0, 1)};
  EXPECT_THROW(r.add(bad_default), std::invalid_argument);
  NodeSpec two_ports = sample_spec("b");
  two_ports.inputs.push_back(PortSpec{"other", {}, ""});
  EXPECT_THROW(r.add(two_ports), std::invalid_argument);
  NodeSpec no_factory = sample_spec("c");
  no_factory.create = nullptr;
  EXPECT_THROW(r.add(no_factory), std::invalid_argument);
  EXPECT_EQ(r.find("a"), nullptr);
}

// Lookup of an unknown name answers nullptr; names come back sorted.
TEST(Registry, LookupAndListing) {
  Registry r = test::builtin_registry();
  EXPECT_EQ(r.find("no.such"), nullptr);
  ASSERT_NE(r.find("batch"), nullptr);
  auto types = r.types();
  EXPECT_TRUE(std::is_sorted(types.begin(), types.end()));
  EXPECT_EQ(r.origin("loss.mse"), "built-in");
}

}  // namespace umrflow
