#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_paths.h"
#include "test_util.h"

namespace umrflow {

namespace {
const std::string kBin = UMRFLOW_BINARY;
const std::string kGraphs = std::string(UMRFLOW_SOURCE_DIR) + "/graphs/";

std::vector<std::string> first_cells(const std::string& csv) {
  std::vector<std::string> out;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) out.push_back(line.substr(0, line.find(',')));
  return out;
}
}  // namespace

// The 2D phantom profile end to end at a tiny size: stages 1-3 on RGB-D
// phantom scenes, each from the previous checkpoint, then the evaluation over
// Table 2's three inputs, and the baseline evaluated by the plain path; each
// report has RGB, Depth, RGB+Depth, Average and Std Dev rows.
TEST(SodGraphs, RgbdPhantomStagesAndEvaluation) {
  test::TempDir dir;
  const std::string d = dir.path();
  std::string out;
  for (const char* split : {"train", "test"})
    ASSERT_EQ(test::run_command(kBin + " synth rgbd --scenes 4 --size 64 --seed " + (split[1] == 'r' ? "1" : "2") + " --out " + d + "/" + split + " 2>&1", &out), 0) << out;
  const std::string tiny = " --quiet --set data.samples.root=" + d + "/train --set train.epochs=1 --set data.batch.size=2 " +
                           "--set modules.net.decoder_width=8 ";
  auto run = [&](const std::string& graph, const std::string& extra) {
    std::string log;
    const int rc = test::run_command(kBin + " run " + kGraphs + "phantoms2d/" + graph + extra + " 2>&1", &log);
    EXPECT_EQ(rc, 0) << graph << "\n" << log;
    return rc == 0;
  };
  ASSERT_TRUE(run("stage1.yaml", tiny + "--out " + d + "/s1"));
  ASSERT_TRUE(run("stage2.yaml", tiny + "--set modules.net.init.from=" + d + "/s1/last.pt --out " + d + "/s2"));
  ASSERT_TRUE(run("stage3.yaml", tiny + "--set modules.net.init.from=" + d + "/s2/last.pt --out " + d + "/s3"));
  const std::string eval = " --quiet --set data.samples.root=" + d + "/test --set modules.net.decoder_width=8 ";
  ASSERT_TRUE(run("eval.yaml", eval + "--set modules.net.init.from=" + d + "/s3/last.pt --set step.report.maps=true --out " + d + "/ev"));
  const std::vector<std::string> rows = {"input", "RGB", "Depth", "RGB+Depth", "Average", "Std Dev"};
  EXPECT_EQ(first_cells(test::read_file(d + "/ev/report.csv")), rows);
  EXPECT_TRUE(std::filesystem::exists(d + "/ev/maps/Depth/0001.png"));
  ASSERT_TRUE(run("baseline.yaml", tiny + "--out " + d + "/b"));
  ASSERT_TRUE(run("eval.yaml", eval + "--set modules.net.adapter=false --set modules.net.init.from=" + d + "/b/last.pt --out " + d + "/bev"));
  EXPECT_EQ(first_cells(test::read_file(d + "/bev/report.csv")), rows);
}

// The 2D graphs at the paper's settings validate, RGB-D and RGB-T: stages 1-3
// and the evaluation as one chain (each reads the previous checkpoint), the baseline alone.
TEST(SodGraphs, FullGraphsValidate) {
  for (const std::string task : {"rgbd_sod", "rgbt_sod"}) {
    std::string chain, log;
    for (const char* stage : {"stage1", "stage2", "stage3", "eval"}) chain += " " + kGraphs + stage + "_" + task + ".yaml";
    EXPECT_EQ(test::run_command(kBin + " validate" + chain + " 2>&1", &log), 0) << task << "\n" << log;
    EXPECT_EQ(test::run_command(kBin + " validate " + kGraphs + "baseline_" + task + ".yaml 2>&1", &log), 0) << task << "\n" << log;
  }
}

}  // namespace umrflow
