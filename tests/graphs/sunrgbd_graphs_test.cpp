#include <gtest/gtest.h>

#include <string>

#include "csv_util.h"
#include "test_paths.h"
#include "test_util.h"

namespace umrflow {

namespace {
const std::string kBin = UMRFLOW_BINARY;
const std::string kGraphs = std::string(UMRFLOW_SOURCE_DIR) + "/graphs/";
}  // namespace

// The SUN-RGBD phantom profile end to end at a tiny size: `synth sunrgbd` scenes, stages 1-3 each from the previous
// checkpoint, the evaluation over Table 2's three inputs (mIoU and pixel accuracy in 0..100, one IoU per class), and
// the baseline evaluated by the plain path.
TEST(SunRgbdGraphs, PhantomStagesAndEvaluation) {
  test::TempDir dir;
  const std::string d = dir.path();
  std::string out;
  ASSERT_EQ(test::run_command(kBin + " synth sunrgbd --train 4 --test 2 --size 32 --out " + d + "/data 2>&1", &out), 0) << out;
  const std::string data = " --quiet --set data.samples.root=" + d + "/data --set modules.net.decoder_width=8 --set data.resize.size=[32,32] ";
  const std::string tiny = data + "--set data.samples.split=" + d + "/data/train.txt --set train.epochs=1 --set data.batch.size=2 ";
  auto run = [&](const std::string& graph, const std::string& extra) {
    std::string log;
    const int rc = test::run_command(kBin + " run " + kGraphs + "phantoms2d/" + graph + extra + " 2>&1", &log);
    EXPECT_EQ(rc, 0) << graph << "\n" << log;
    return rc == 0;
  };
  ASSERT_TRUE(run("sunrgbd_stage1.yaml", tiny + "--out " + d + "/s1"));
  ASSERT_TRUE(run("sunrgbd_stage2.yaml", tiny + "--set modules.net.init.from=" + d + "/s1/last.pt --out " + d + "/s2"));
  ASSERT_TRUE(run("sunrgbd_stage3.yaml", tiny + "--set modules.net.init.from=" + d + "/s2/last.pt --out " + d + "/s3"));
  const std::string eval = data + "--set data.samples.split=" + d + "/data/test.txt ";
  ASSERT_TRUE(run("sunrgbd_eval.yaml", eval + "--set modules.net.init.from=" + d + "/s3/last.pt --out " + d + "/ev"));
  ASSERT_TRUE(run("sunrgbd_baseline.yaml", tiny + "--out " + d + "/b"));
  ASSERT_TRUE(run("sunrgbd_eval.yaml", eval + "--set modules.net.adapter=false --set modules.net.init.from=" + d + "/b/last.pt --out " + d + "/bev"));
  for (const char* run_dir : {"/ev", "/bev"}) {
    const auto rows = test::csv_rows(test::read_file(d + run_dir + "/report.csv"));
    ASSERT_EQ(rows.size(), 6u) << run_dir;
    const std::vector<std::string> labels = {"input", "RGB", "Depth", "RGB+Depth", "Average", "Std Dev"};
    for (std::size_t r = 0; r < rows.size(); ++r) EXPECT_EQ(rows[r].at(0), labels[r]);
    for (std::size_t r = 1; r < 4; ++r)
      for (std::size_t c = 1; c < 4; ++c) {
        const double v = std::stod(rows[r].at(c));
        EXPECT_TRUE(v >= 0 && v <= 100) << run_dir << " " << rows[r][0] << " " << rows[0][c] << " = " << v;
      }
    const auto per_class = test::csv_rows(test::read_file(d + run_dir + "/per_class.csv"));
    ASSERT_EQ(per_class.size(), 4u);
    EXPECT_EQ(per_class[0].size(), 9u);  // input + 8 classes
  }
}

// The SUN-RGBD graphs at their full settings validate: stages 1-3 and the evaluation as one chain, the baseline alone.
TEST(SunRgbdGraphs, FullGraphsValidate) {
  std::string chain, log;
  for (const char* stage : {"stage1", "stage2", "stage3", "eval"}) chain += " " + kGraphs + stage + "_sunrgbd.yaml";
  EXPECT_EQ(test::run_command(kBin + " validate" + chain + " 2>&1", &log), 0) << log;
  EXPECT_EQ(test::run_command(kBin + " validate " + kGraphs + "baseline_sunrgbd.yaml 2>&1", &log), 0) << log;
}

}  // namespace umrflow
