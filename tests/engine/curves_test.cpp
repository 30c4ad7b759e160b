#include <gtest/gtest.h>

#include <regex>

#include "test_util.h"
#include "umrflow/curves.h"

namespace umrflow {

namespace {
int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}
}  // namespace

// A metrics line reads back as its numbers; strings and nested values are skipped.
TEST(Curves, MetricsLinesParse) {
  const auto m = parse_metrics_line(R"({"epoch": 3, "loss": 0.25, "lr": 1e-4, "note": "x", "val.report.mean_dice": -2.5})");
  EXPECT_EQ(m.size(), 4u);
  EXPECT_EQ(m.at("epoch"), 3.0);
  EXPECT_EQ(m.at("lr"), 1e-4);
  EXPECT_EQ(m.at("val.report.mean_dice"), -2.5);
  test::TempDir dir;
  const auto all = read_metrics(dir.write("m.jsonl", "{\"epoch\": 1, \"a\": 2}\n\n{\"epoch\": 2, \"a\": 1}\n"));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].at("a"), 1.0);
  EXPECT_TRUE(read_metrics(dir.path() + "/absent.jsonl").empty());
}

// A line a killed run cut short (no closing brace) is no record: it is left
// out and its line number reported; blank lines are not reported.
TEST(Curves, CutLinesAreLeftOutAndNamed) {
  EXPECT_TRUE(is_whole_metrics_line(" {\"a\": 1}\r"));
  EXPECT_FALSE(is_whole_metrics_line("{\"epoch\": 3, \"loss\": 0."));
  EXPECT_FALSE(is_whole_metrics_line("\"epoch\": 3}"));
  test::TempDir dir;
  const std::string file = dir.write("m.jsonl", "{\"epoch\": 1, \"a\": 2}\n\n{\"epoch\": 2, \"a\"\n{\"epoch\": 3, \"a\": 0}\nxyz\n");
  std::vector<std::size_t> cut;
  const auto all = read_metrics(file, &cut);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].at("epoch"), 3.0);
  EXPECT_EQ(cut, (std::vector<std::size_t>{3, 5}));
}

// One panel per metric (not the epoch), one polyline per run and panel, a dot
// for a run with a single epoch, the names escaped; the points of a line run
// left to right (epochs) and a lower value is drawn lower.
TEST(Curves, PanelsLinesAndEscaping) {
  CurveRun a{"run <a>", {{{"epoch", 1}, {"loss", 3}, {"lr", 0.1}}, {{"epoch", 2}, {"loss", 2}, {"lr", 0.1}}, {{"epoch", 3}, {"loss", 1}}}};
  CurveRun b{"b&c", {{{"epoch", 1}, {"loss", 2.5}}}};
  const std::string svg = curves_svg({a, b}, "title");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(svg, "font-weight=\"bold\">"), 2);  // loss, lr
  EXPECT_NE(svg.find(">loss</text>"), std::string::npos);
  EXPECT_NE(svg.find(">lr</text>"), std::string::npos);
  EXPECT_EQ(svg.find(">epoch</text>"), std::string::npos);
  EXPECT_NE(svg.find("run &lt;a&gt;"), std::string::npos);
  EXPECT_NE(svg.find("b&amp;c"), std::string::npos);
  EXPECT_EQ(count(svg, "<polyline"), 2);  // a: loss and lr
  EXPECT_EQ(count(svg, "<circle"), 1);   // b: loss, one epoch
  const std::smatch m = [&] {
    std::smatch r;
    const std::regex line("points=\"([0-9.]+),([0-9.]+) ([0-9.]+),([0-9.]+) ([0-9.]+),([0-9.]+)\"");
    std::regex_search(svg, r, line);
    return r;
  }();
  ASSERT_EQ(m.size(), 7u) << svg;
  EXPECT_LT(std::stod(m[1]), std::stod(m[3]));
  EXPECT_LT(std::stod(m[3]), std::stod(m[5]));
  EXPECT_LT(std::stod(m[2]), std::stod(m[4]));  // loss 3 > 2: SVG y grows downwards
  EXPECT_NE(curves_svg({}, "t").find("no metrics recorded yet"), std::string::npos);
}

}  // namespace umrflow
