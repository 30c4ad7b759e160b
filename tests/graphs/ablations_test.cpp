#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_paths.h"
#include "test_util.h"

namespace umrflow {

namespace {
const std::string kBin = UMRFLOW_BINARY;
const std::string kAblations = std::string(UMRFLOW_SOURCE_DIR) + "/graphs/ablations/";

}  // namespace

// Every sweep file of the paper's ablations (Tables 3, 4, 5, 9) and of stage
// 3's budget validates all its variants and runs its first one at a tiny size
// from tiny stage-1/2/3 checkpoints, and the table names every metric it
// promises with a number.
TEST(Ablations, EverySweepValidatesAndRunsOneVariant) {
  test::TempDir dir;
  const std::string d = dir.path();
  std::string log;
  ASSERT_EQ(test::run_command(kBin + " synth brats --cases 5 --size 32 --procedural --out " + d + "/ph 2>&1", &log), 0) << log;
  ASSERT_EQ(test::run_command(kBin + " split --from " + d + "/ph --val 0.2 --test 0.2 --out " + d + "/ph/split.yaml 2>&1", &log), 0) << log;
  const std::string data = " --quiet --set data.cases.root=" + d + "/ph --set data.cases.split=" + d + "/ph/split.yaml ";
  const std::string tiny = data + "--set train.epochs=1 --set 'data.crop.size=[16, 16, 16]' ";
  const std::string w = "[4, 8, 8, 8]";
  const std::string graphs = std::string(UMRFLOW_SOURCE_DIR) + "/graphs/phantoms/";
  // Tiny checkpoints standing in for the demo's runs/demo/stage{1,2,3}.
  const std::string s1 = d + "/s1/last.pt", s2 = d + "/s2/last.pt", s3 = d + "/s3/last.pt";
  ASSERT_EQ(test::run_command(kBin + " run " + graphs + "stage1.yaml" + tiny + "--set 'modules.net.widths=" + w + "' --out " + d + "/s1 2>&1", &log), 0) << log;
  ASSERT_EQ(test::run_command(kBin + " run " + graphs + "stage2.yaml" + tiny + "--set 'modules.net.widths=" + w +
                                  "' --set train.validate=null --set modules.net.init.from=" + s1 + " --out " + d + "/s2 2>&1", &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(kBin + " run " + graphs + "stage3.yaml" + tiny + "--set 'modules.net.widths=" + w +
                                  "' --set train.validate=null --set modules.net.init.from=" + s2 + " --out " + d + "/s3 2>&1", &log),
            0)
      << log;
  const std::string val_data = "data.cases.root=" + d + "/ph, data.cases.split=" + d + "/ph/split.yaml, data.cases.subset=test, "
                               "step.report.hd95=false, 'step.seg.window=[16, 16, 16]'";
  const std::string net_val = " --set \"train.validate.set=[" + val_data + ", 'modules.net.widths=" + w + "']\" --set train.validate.every=1 ";
  const std::string plain_val = " --set \"train.validate.set=[" + val_data + ", 'modules.net.widths=" + w +
                                "', modules.net.adapter=false]\" --set train.validate.every=1 ";
  const std::string parts_val = " --set \"train.validate.set=[" + val_data + ", 'modules.enc.widths=" + w + "', 'modules.dec.widths=" + w +
                                "', 'modules.ada.widths=" + w + "']\" --set train.validate.every=1 ";
  const std::map<std::string, std::string> overrides = {
      {"table3_stage1.yaml", tiny + "--set 'modules.net.widths=" + w + "'"},
      {"table3_stage2.yaml", tiny + "--set 'modules.net.widths=" + w + "' --set modules.net.init.from=" + s1 + plain_val},
      {"table3_stage3.yaml", tiny + "--set 'modules.net.widths=" + w + "' --set modules.net.init.from=" + s2 + net_val},
      {"stage2_loss_weights.yaml", tiny + "--set 'modules.net.widths=" + w + "' --set modules.net.init.from=" + s1 + plain_val},
      {"stage3_budget.yaml", tiny + "--set 'modules.net.widths=" + w + "' --set modules.net.init.from=" + s2 + net_val},
      {"table4_adapters.yaml", tiny + "--set 'modules.enc.widths=" + w + "' --set 'modules.dec.widths=" + w + "' --set 'modules.ada.widths=" + w +
                                   "' --set modules.enc.init.from=" + s2 + " --set modules.dec.init.from=" + s2 + parts_val},
      {"table5_levels.yaml", tiny + "--set 'modules.enc.widths=" + w + "' --set 'modules.dec.widths=" + w + "' --set 'modules.ada.widths=" + w +
                                 "' --set modules.enc.init.from=" + s2 + " --set modules.dec.init.from=" + s2 + parts_val},
      {"table9_channel_order.yaml", data + "--set 'modules.net.widths=" + w + "' --set 'step.seg.window=[16, 16, 16]' --set data.cases.subset=test" +
                                        " --set modules.net.init.from=" + s3},
  };
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kAblations)) {
    const std::string name = entry.path().filename().string();
    if (name == "demo_noise.yaml") continue;  // a sweep of graphs/demo.yaml, not of the phantom profile
    ++files;
    ASSERT_TRUE(overrides.count(name)) << name << " has no tiny settings in this test";
    const std::string text = test::read_file(entry.path().string());
    const auto at = text.find("- {name: ") != std::string::npos ? text.find("- {name: ") + 9 : text.find("- name: ") + 8;
    const std::string first = text.substr(at, text.find_first_of(",}\n", at) - at);
    const std::string out = d + "/" + entry.path().stem().string();
    ASSERT_EQ(test::run_command(kBin + " sweep " + entry.path().string() + overrides.at(name) + " --only " + first + " --out " + out + " 2>&1", &log),
              0)
        << name << "\n" << log;
    const std::string table = test::read_file(out + "/sweep.csv");
    const std::string header = table.substr(0, table.find('\n'));
    const std::string rest = table.substr(table.find('\n') + 1);
    const std::string row = rest.substr(0, rest.find('\n'));
    EXPECT_EQ(row.rfind(first + ",done", 0), 0u) << name << "\n" << table;
    EXPECT_EQ(row.find(",,"), std::string::npos) << name << ": a promised metric is missing\n" << table;
    EXPECT_NE(rest.find("not run"), std::string::npos) << name << ": the other variants should only be validated";
    if (name != "table3_stage1.yaml") EXPECT_NE(header.find("average_WT"), std::string::npos) << name;
  }
  EXPECT_EQ(files, overrides.size());
}

}  // namespace umrflow
