#include <gtest/gtest.h>

#include "test_util.h"
#include "umrflow/declare.h"
#include "umrflow/doc.h"
#include "umrflow/node.h"

namespace umrflow {

namespace {

struct Options {
  std::int64_t depth = -1;
};

/// A node with one parameter of each bound kind and a setup() that derives state.
class Probe final : public SampleNode {
 public:
  static void declare(Declaration<Probe>& d) {
    d.type("test.probe", NodeKind::sample, "binds everything");
    d.input({"in", {}, "the sample"});
    d.param(&Probe::flag, param::boolean("flag", false, "a flag"));
    d.param(&Probe::count, param::integer("count", 3, "a count").range(1, 9));
    d.param(&Probe::small, param::integer("small", 2, "an int member"));
    d.param(&Probe::scale, param::number("scale", 0.5, "a number"));
    d.param(&Probe::mode, param::choice("mode", "a", {"a", "b"}, "a choice"));
    d.param(&Probe::sizes, param::integers("sizes", std::vector<std::int64_t>{1, 2}, "ints"));
    d.param(&Probe::weights, param::numbers("weights", std::vector<double>{0.25}, "numbers"));
    d.param(&Probe::names, param::texts("names", std::vector<std::string>{"x"}, "texts"));
    d.param(&Probe::options, &Options::depth, param::integer("depth", 4, "lands in an options struct"));
  }
  void setup() { derived = count * 10; }
  void apply(Packet&, Context&) override {}

  bool flag = true;
  std::int64_t count = 0;
  int small = 0;
  double scale = 0;
  std::string mode;
  std::vector<std::int64_t> sizes;
  std::vector<double> weights;
  std::vector<std::string> names;
  Options options;
  std::int64_t derived = 0;
};

class Mismatched final : public SampleNode {
 public:
  static void declare(Declaration<Mismatched>& d) {
    d.type("test.mismatched", NodeKind::sample, "a double bound as an int");
    d.param(&Mismatched::value, param::integer("value", 1, "wrong C++ type"));
  }
  void apply(Packet&, Context&) override {}
  double value = 0;
};

Probe& made(const Registry& r, const std::string& yaml, std::unique_ptr<Node>& keep) {
  Diagnostics d;
  const NodeSpec* spec = r.find("test.probe");
  Params p = parse_params(parse_yaml(yaml, "probe.yaml"), spec->params, {}, "probe", d);
  EXPECT_TRUE(d.empty()) << d.str();
  keep = spec->create(p);
  return *dynamic_cast<Probe*>(keep.get());
}

}  // namespace

// The declaration yields the spec (parameters in declared order, ports, kind)
// and a factory that writes each value, default or given, into its member and
// then calls setup().
TEST(Declare, ValuesLandInTheirMembers) {
  Registry r;
  add_nodes<Probe>(r);
  const NodeSpec* spec = r.find("test.probe");
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(spec->kind, NodeKind::sample);
  ASSERT_EQ(spec->params.size(), 9u);
  EXPECT_EQ(spec->params[1].name, "count");
  EXPECT_EQ(spec->params[8].name, "depth");
  std::unique_ptr<Node> keep;
  const Probe& defaults = made(r, "{}", keep);
  EXPECT_FALSE(defaults.flag);
  EXPECT_EQ(defaults.count, 3);
  EXPECT_EQ(defaults.small, 2);
  EXPECT_EQ(defaults.scale, 0.5);
  EXPECT_EQ(defaults.mode, "a");
  EXPECT_EQ(defaults.options.depth, 4);
  EXPECT_EQ(defaults.derived, 30);
  const Probe& given = made(r, "{flag: true, count: 7, small: -5, scale: 2, mode: b, sizes: [9], weights: [1, 2.5], names: [p, q], depth: 11}", keep);
  EXPECT_TRUE(given.flag);
  EXPECT_EQ(given.count, 7);
  EXPECT_EQ(given.small, -5);
  EXPECT_EQ(given.scale, 2.0);  // an int written for a number widens
  EXPECT_EQ(given.mode, "b");
  EXPECT_EQ(given.sizes, std::vector<std::int64_t>{9});
  EXPECT_EQ(given.weights, (std::vector<double>{1.0, 2.5}));
  EXPECT_EQ(given.names, (std::vector<std::string>{"p", "q"}));
  EXPECT_EQ(given.options.depth, 11);
  EXPECT_EQ(given.derived, 70);
}

// A member whose C++ type cannot hold the declared parameter type is refused
// when the type is registered, naming the parameter.
TEST(Declare, MismatchedMemberTypeIsRefused) {
  Registry r;
  try {
    add_nodes<Mismatched>(r);
    FAIL() << "registered";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("parameter 'value' is declared int"), std::string::npos) << e.what();
  }
}

// A declared range rejects a value outside it, at the value's file:line:col.
TEST(Declare, OutOfRangeValueIsLocated) {
  Registry r;
  add_nodes<Probe>(r);
  Diagnostics d;
  const std::string yaml = "{flag: true,\n count: 12}";
  parse_params(parse_yaml(yaml, "probe.yaml"), r.find("test.probe")->params, {}, "probe", d);
  ASSERT_EQ(d.items().size(), 1u) << d.str();
  EXPECT_EQ(d.items()[0].where.file, "probe.yaml");
  EXPECT_EQ(d.items()[0].where.line, 2);
  EXPECT_EQ(d.items()[0].where.column, 9);
  EXPECT_NE(d.items()[0].message.find("count"), std::string::npos) << d.str();
}

}  // namespace umrflow
