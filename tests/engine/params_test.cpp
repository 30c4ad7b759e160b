#include <gtest/gtest.h>

#include "test_util.h"
#include "umrflow/doc.h"
#include "umrflow/params.h"

namespace umrflow {

namespace {
std::vector<ParamSpec> specs() {
  return {
      param::number("std", 0.1, "noise").min(0.0),
      param::integers("size", std::vector<std::int64_t>{8, 8, 8}, "crop").length(3).min(1),
      param::choice("mode", "zeros", {"zeros", "copy"}, "fill"),
      param::boolean("on", true, "switch"),
      param::integer("count", std::nullopt, "required count").range(1, 10),
  };
}
Params parse(const std::string& yaml, Diagnostics& d) {
  return parse_params(parse_yaml(yaml, "p.yaml"), specs(), {"id", "type"}, "node 'n' (t)", d);
}
}  // namespace

// Values are typed, and defaults fill what is not written.
TEST(Params, ParsesTypesAndDefaults) {
  Diagnostics d;
  Params p = parse("{id: n, type: t, count: 3, size: [1, 2, 3], on: false}", d);
  ASSERT_TRUE(d.empty()) << d.str();
  EXPECT_EQ(p.get_int("count"), 3);
  EXPECT_EQ(p.get_ints("size"), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_FALSE(p.get_bool("on"));
  EXPECT_DOUBLE_EQ(p.get_number("std"), 0.1);
  EXPECT_EQ(p.get_text("mode"), "zeros");
}

// Each kind of bad value gets its own diagnostic at the value's position.
TEST(Params, ReportsEveryBadValue) {
  const std::string yaml = "{count: 0, std: abc, size: [1, 2], mode: zero, stdd: 1, on: 3}";
  Diagnostics d;
  parse(yaml, d);
  ASSERT_EQ(d.size(), 6u) << d.str();
  auto expect_at = [&](const std::string& fragment, const std::string& needle) {
    const Diagnostic* diag = test::find_diagnostic(d, fragment);
    ASSERT_NE(diag, nullptr) << fragment << "\n" << d.str();
    auto [line, col] = test::position_of(yaml, needle);
    EXPECT_EQ(diag->where.line, line) << fragment;
    EXPECT_EQ(diag->where.column, col) << fragment;
  };
  expect_at("outside its range (int in [1, 10])", "0,");
  expect_at("'std' expects float >= 0, got 'abc'", "abc");
  expect_at("expects 3 values, got 2", "[1, 2]");
  expect_at("did you mean 'zeros'", "zero,");
  expect_at("unknown parameter 'stdd' (did you mean 'std'", "stdd");
  expect_at("'on' expects bool", "3}");
}

// A required parameter that is absent is reported at the node.
TEST(Params, MissingRequired) {
  Diagnostics d;
  parse("{id: n}", d);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d.items()[0].message.find("missing required parameter 'count'"), std::string::npos);
}

// A quoted number is a string, not a number.
TEST(Params, QuotedNumberIsNotANumber) {
  Diagnostics d;
  parse("{count: \"3\"}", d);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d.items()[0].message.find("'count' expects int"), std::string::npos);
}

// The constraint text is what listings and errors show.
TEST(Params, ConstraintText) {
  auto s = specs();
  EXPECT_EQ(s[0].constraint_text(), "float >= 0");
  EXPECT_EQ(s[1].constraint_text(), "list of 3 int >= 1");
  EXPECT_EQ(s[2].constraint_text(), "one of zeros|copy");
  EXPECT_EQ(s[4].constraint_text(), "int in [1, 10]");
  EXPECT_EQ(format_param_value(*s[1].default_value), "[8, 8, 8]");
}

}  // namespace umrflow
