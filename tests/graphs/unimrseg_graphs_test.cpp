#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "test_paths.h"
#include "test_util.h"

namespace umrflow {

namespace {
const std::string kBin = UMRFLOW_BINARY;
const std::string kGraphs = std::string(UMRFLOW_SOURCE_DIR) + "/graphs/phantoms/";

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
/// The number after "key": in one line of metrics.jsonl.
double metric(const std::string& line, const std::string& key) {
  const std::size_t at = line.find("\"" + key + "\": ");
  EXPECT_NE(at, std::string::npos) << key << " in " << line;
  return at == std::string::npos ? 0.0 : std::stod(line.substr(at + key.size() + 4));
}
torch::Tensor tensor_of(const std::string& checkpoint, const std::string& key) {
  torch::serialize::InputArchive a;
  a.load_from(checkpoint);
  torch::Tensor t;
  a.read(key, t);
  return t;
}
}  // namespace

// The phantom profile of the three stage graphs (and stage 2's Dice + BCE
// option) and the evaluation run end to end at a tiny size: each stage starts
// from the previous one's checkpoint;
// stage 3 leaves the encoder's weights as stage 2 left them but moves its
// BatchNorm statistics (released behaviour) and trains decoder and adapters;
// the report has the 15 subsets in the paper's order, then Average and Std Dev.
TEST(UniMRSegGraphs, PhantomStagesAndEvaluation) {
  test::TempDir dir;
  const std::string d = dir.path();
  std::string out;
  ASSERT_EQ(test::run_command(kBin + " synth brats --cases 6 --size 32 --procedural --out " + d + "/ph 2>&1", &out), 0) << out;
  ASSERT_EQ(test::run_command(kBin + " split --from " + d + "/ph --val 0.2 --test 0.2 --out " + d + "/ph/split.yaml 2>&1", &out), 0) << out;
  const std::string common = " --quiet --set data.cases.root=" + d + "/ph --set data.cases.split=" + d +
                             "/ph/split.yaml --set 'modules.net.widths=[4, 8, 8, 8]' ";
  const std::string crop = " --set train.epochs=1 --set 'data.crop.size=[16, 16, 16]' ";
  auto run = [&](const std::string& graph, const std::string& extra) {
    std::string log;
    const int rc = test::run_command(kBin + " run " + kGraphs + graph + common + extra + " 2>&1", &log);
    EXPECT_EQ(rc, 0) << graph << "\n" << log;
    return rc == 0;
  };
  ASSERT_TRUE(run("stage1.yaml", crop + "--out " + d + "/s1"));
  ASSERT_TRUE(run("stage2.yaml", crop + "--set train.validate=null --set modules.net.init.from=" + d + "/s1/last.pt --out " + d + "/s2"));
  // The Dice + BCE option of stage 2 adds both BCE terms, weight 1, to the
  // released objective (0.2 contrast + both Dice terms).
  ASSERT_TRUE(run("stage2_dice_bce.yaml", crop + "--set train.validate=null --set modules.net.init.from=" + d + "/s1/last.pt --out " + d +
                                              "/s2bce"));
  const std::string m = lines_of(d + "/s2bce/metrics.jsonl").back();
  EXPECT_GT(metric(m, "bce_a"), 0.0);
  EXPECT_NEAR(metric(m, "total"),
              0.2 * metric(m, "contrast") + metric(m, "dice_a") + metric(m, "dice_b") + metric(m, "bce_a") + metric(m, "bce_b"), 1e-5);
  // Stage 3 validates after its epoch on the validation case and keeps best.pt.
  const std::string val = " --set \"train.validate.set=[data.cases.root=" + d + "/ph, data.cases.split=" + d +
                          "/ph/split.yaml, data.cases.subset=val, step.report.hd95=false, 'step.seg.window=[16, 16, 16]', "
                          "'modules.net.widths=[4, 8, 8, 8]']\" ";
  ASSERT_TRUE(run("stage3.yaml", crop + val + "--set modules.net.init.from=" + d + "/s2/last.pt --out " + d + "/s3"));
  EXPECT_TRUE(std::filesystem::exists(d + "/s3/best.pt"));
  EXPECT_TRUE(std::filesystem::exists(d + "/s3/val/epoch_0001/report.csv"));
  EXPECT_NE(lines_of(d + "/s3/metrics.jsonl").at(0).find("\"val.report.mean_dice\""), std::string::npos);
  const std::string s2 = d + "/s2/last.pt", s3 = d + "/s3/last.pt";
  // The phantom profile freezes the decoder and the encoder's statistics: the
  // complete path is still the stage-2 network.
  EXPECT_TRUE(torch::equal(tensor_of(s2, "net.down2.maxpool_conv.1.double_conv.0.weight"),
                           tensor_of(s3, "net.down2.maxpool_conv.1.double_conv.0.weight")));
  EXPECT_TRUE(torch::equal(tensor_of(s2, "net.down2.maxpool_conv.1.double_conv.1.running_mean"),
                           tensor_of(s3, "net.down2.maxpool_conv.1.double_conv.1.running_mean")));
  EXPECT_TRUE(torch::equal(tensor_of(s2, "net.up4.conv.double_conv.0.weight"), tensor_of(s3, "net.up4.conv.double_conv.0.weight")));
  EXPECT_TRUE(torch::equal(tensor_of(s2, "net.up4.conv.double_conv.1.running_mean"),
                           tensor_of(s3, "net.up4.conv.double_conv.1.running_mean")));
  // As released (two switches back), the encoder's statistics and the decoder move.
  ASSERT_TRUE(run("stage3.yaml", crop + val + "--set modules.net.freeze_decoder=false --set modules.net.encoder_bn_update=true " +
                                     "--set modules.net.init.from=" + d + "/s2/last.pt --out " + d + "/s3r"));
  const std::string s3r = d + "/s3r/last.pt";
  EXPECT_FALSE(torch::equal(tensor_of(s2, "net.down2.maxpool_conv.1.double_conv.1.running_mean"),
                            tensor_of(s3r, "net.down2.maxpool_conv.1.double_conv.1.running_mean")));
  EXPECT_FALSE(torch::equal(tensor_of(s2, "net.up4.conv.double_conv.0.weight"), tensor_of(s3r, "net.up4.conv.double_conv.0.weight")));
  EXPECT_EQ(tensor_of(s3, "net.adaptor_transformer_1.blocks.0.attn.qkv.weight").size(0), 12);

  // The split network (encoder, adapter, decoder modules) trains from the same
  // stage-2 checkpoint; its merged export has the one-module export's names in
  // the same order, and the one-module evaluation graph reads it back.
  const std::string parts = " --quiet --set execution.device=cpu --set data.cases.root=" + d + "/ph --set data.cases.split=" + d +
                            "/ph/split.yaml --set 'modules.enc.widths=[4, 8, 8, 8]' --set 'modules.dec.widths=[4, 8, 8, 8]' "
                            "--set 'modules.ada.widths=[4, 8, 8, 8]' --set 'data.foreground.k_divisible=[16, 16, 16]' " +
                            crop + "--set train.schedule.warmup_epochs=0 --set train.validate=null --set modules.enc.init.from=" + s2 + " --set modules.dec.init.from=" + s2;
  std::string log;
  ASSERT_EQ(test::run_command(kBin + " run " + kGraphs + "../stage3_brats_parts.yaml" + parts + " --out " + d + "/s3p 2>&1", &log), 0) << log;
  ASSERT_EQ(test::run_command(kBin + " weights export " + d + "/s3p/last.pt " + d + "/parts.pt 2>&1", &log), 0) << log;
  ASSERT_EQ(test::run_command(kBin + " weights export " + s3 + " " + d + "/net.pt 2>&1", &log), 0) << log;
  std::string parts_keys, net_keys;
  ASSERT_EQ(test::run_command(kBin + " weights list " + d + "/parts.pt 2>/dev/null | cut -f1,2", &parts_keys), 0);
  ASSERT_EQ(test::run_command(kBin + " weights list " + d + "/net.pt 2>/dev/null | cut -f1,2", &net_keys), 0);
  EXPECT_EQ(parts_keys, net_keys);
  EXPECT_TRUE(torch::equal(tensor_of(s2, "net.down2.maxpool_conv.1.double_conv.0.weight"),
                           tensor_of(d + "/s3p/last.pt", "enc.down2.maxpool_conv.1.double_conv.0.weight")));
  EXPECT_FALSE(torch::equal(tensor_of(s2, "net.up4.conv.double_conv.0.weight"), tensor_of(d + "/s3p/last.pt", "dec.up4.conv.double_conv.0.weight")));
  ASSERT_EQ(test::run_command(kBin + " weights import " + d + "/parts.pt " + d + "/parts_net.pt --module net 2>&1", &log), 0) << log;
  ASSERT_TRUE(run("eval.yaml", "--set 'step.seg.window=[16, 16, 16]' --set step.report.hd95=false --set modules.net.init.from=" + d +
                                   "/parts_net.pt --out " + d + "/evp"));
  EXPECT_EQ(lines_of(d + "/evp/report.csv").size(), 18u);

  ASSERT_TRUE(run("eval.yaml", "--set 'step.seg.window=[16, 16, 16]' --set modules.net.init.from=" + s3 + " --out " + d + "/ev"));
  const auto rows = lines_of(d + "/ev/report.csv");
  ASSERT_EQ(rows.size(), 18u);
  EXPECT_EQ(rows[0], "present,dice_WT,dice_TC,dice_ET,hd95_WT,hd95_TC,hd95_ET");
  EXPECT_EQ(rows[1].substr(0, 3), "T2,");
  EXPECT_EQ(rows[4].substr(0, 6), "Flair,");
  EXPECT_EQ(rows[15].substr(0, 17), "Flair+T1ce+T1+T2,");
  EXPECT_EQ(rows[16].substr(0, 8), "Average,");
  EXPECT_EQ(rows[17].substr(0, 8), "Std Dev,");
  for (const char* f : {"report.md", "report.json", "per_case.csv", "dice_boxplot.svg", "dice_boxplot.png"})
    EXPECT_TRUE(std::filesystem::exists(d + "/ev/" + f)) << f;

  // A network without adapter evaluates every subset by the plain path.
  ASSERT_TRUE(run("eval.yaml", "--set 'step.seg.window=[16, 16, 16]' --set modules.net.adapter=false --set modules.net.init.from=" +
                                   s2 + " --set step.report.predictions=true --out " + d + "/ev2"));
  EXPECT_EQ(lines_of(d + "/ev2/report.csv").size(), 18u);
  std::size_t files = 0;
  for (const auto& f : std::filesystem::directory_iterator(d + "/ev2/predictions")) files += f.path().extension() == ".gz";
  EXPECT_EQ(files, lines_of(d + "/ev2/per_case.csv").size() - 1);  // one per subset and case
}

// Stopping stage 3 and resuming it gives the weights of the uninterrupted run.
TEST(UniMRSegGraphs, Stage3ResumeMatches) {
  test::TempDir dir;
  const std::string d = dir.path();
  std::string out;
  ASSERT_EQ(test::run_command(kBin + " synth brats --cases 3 --size 32 --procedural --out " + d + "/ph 2>&1", &out), 0) << out;
  ASSERT_EQ(test::run_command(kBin + " split --from " + d + "/ph --val 0 --test 0 --out " + d + "/ph/split.yaml 2>&1", &out), 0) << out;
  const std::string common = kBin + " run " + kGraphs + "stage3.yaml --quiet --set data.cases.root=" + d + "/ph --set data.cases.split=" + d +
                             "/ph/split.yaml --set 'modules.net.widths=[4, 8, 8, 8]' --set 'data.crop.size=[16, 16, 16]'"
                             " --set modules.net.init=null --set train.validate=null ";
  ASSERT_EQ(test::run_command(common + "--set train.epochs=3 --out " + d + "/whole 2>&1", &out), 0) << out;
  ASSERT_EQ(test::run_command(common + "--set train.epochs=1 --out " + d + "/cut 2>&1", &out), 0) << out;
  ASSERT_EQ(test::run_command(common + "--set train.epochs=3 --resume " + d + "/cut 2>&1", &out), 0) << out;
  for (const char* key : {"net.up1.conv.double_conv.0.weight", "net.adaptor_transformer_2.blocks.0.attn.relative_position_bias_table",
                          "net.inc.double_conv.1.running_var"})
    EXPECT_TRUE(torch::equal(tensor_of(d + "/whole/last.pt", key), tensor_of(d + "/cut/last.pt", key))) << key;
}

}  // namespace umrflow
