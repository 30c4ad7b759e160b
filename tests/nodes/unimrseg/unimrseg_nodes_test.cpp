#include <gtest/gtest.h>

#include "unimrseg/unimrseg_net.h"
#include "nodes/node_harness.h"
#include "parity.h"
#include "umrflow/module.h"

namespace umrflow {

namespace {

/// Encoder, decoder and adapter module nodes, the adapter linked to the encoder.
struct Split {
  std::unique_ptr<Node> enc, dec, ada;
  ModuleNode& e() { return dynamic_cast<ModuleNode&>(*enc); }
  ModuleNode& d() { return dynamic_cast<ModuleNode&>(*dec); }
  ModuleNode& a() { return dynamic_cast<ModuleNode&>(*ada); }
};

Split make_split(const std::string& widths, const std::string& adapter = "unimrseg.adapter", const std::string& extra = "") {
  Split s;
  s.enc = test::make_node("unet3d.encoder", "{widths: " + widths + ", freeze: true}");
  s.dec = test::make_node("unet3d.decoder", "{widths: " + widths + "}");
  s.ada = test::make_node(adapter, "{widths: " + widths + ", encoder: enc" + extra + "}");
  ModuleNode* enc = &s.e();
  s.a().link([enc](const std::string& id) { return id == "enc" ? enc : nullptr; });
  return s;
}

/// Copies `from`'s tensors into the split modules by the authors' names.
void copy_into(Split& s, torch::nn::Module& from) {
  std::map<std::string, torch::Tensor> src;
  for (const auto& [k, t] : model::state_dict_order(from)) src[k] = t;
  torch::NoGradGuard g;
  std::size_t copied = 0;
  for (ModuleNode* m : {&s.e(), &s.d(), &s.a()})
    for (const auto& [k, t] : model::state_dict_order(m->module())) {
      ASSERT_TRUE(src.count(k)) << k;
      t.copy_(src.at(k));
      ++copied;
    }
  EXPECT_EQ(copied, src.size());
}

Packet image(const torch::Tensor& x) {
  Packet p;
  p.tensors["image"] = x;
  return p;
}

Packet call(ModuleNode& m, std::vector<Packet> in) {
  Context ctx(1, 0, 0, "call", true);
  return m.forward(in, ctx);
}

torch::Tensor levels_cat(const Packet& p, int level) { return p.at("features." + std::to_string(level)); }

}  // namespace

// At the paper's widths, encoder + decoder + adapter hold exactly the tensors of
// the one-module network, in the same order: the authors' stage-3 state dict.
TEST(PartNodes, StateDictIsTheNetworks) {
  Split s = make_split("[64, 128, 256, 512]");
  model::UniMRSegNetOptions o;
  o.adapter = true;
  model::UniMRSegNet net(o);
  std::vector<std::string> split, whole;
  for (ModuleNode* m : {&s.e(), &s.d(), &s.a()})
    for (const auto& [k, t] : model::state_dict_order(m->module())) split.push_back(k + " " + c10::str(t.sizes()));
  for (const auto& [k, t] : model::state_dict_order(*net)) whole.push_back(k + " " + c10::str(t.sizes()));
  EXPECT_EQ(split, whole);
}

// The split modules loaded with the authors' narrow stage-3 weights reproduce
// the parity outputs: complete-path logits, and for every incomplete subset the
// five adapter levels and the logits.
TEST(PartNodes, Stage3NarrowParity) {
  if (!test::have_parity()) GTEST_SKIP() << "parity vectors are not beside the project";
  const std::string g = "unimrseg_stage3_narrow_24";
  Split s = make_split("[8, 16, 32, 32]");
  for (ModuleNode* m : {&s.e(), &s.d(), &s.a()}) {
    std::map<std::string, torch::Tensor> mine;
    for (const auto& [k, t] : model::state_dict_order(m->module())) mine[k] = t;
    torch::NoGradGuard ng;
    for (auto& [k, t] : mine) t.copy_(test::parity(g + "/state_dict/" + k).to(t.dtype()));
    m->module().eval();
  }
  torch::NoGradGuard ng;
  auto close = [](const torch::Tensor& got, const torch::Tensor& want, const std::string& what) {
    ASSERT_EQ(got.sizes(), want.sizes()) << what;
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-4 * std::max(1.0, want.abs().max().item<double>())) << what;
  };
  const torch::Tensor x = test::parity(g + "/input0");
  close(call(s.d(), {call(s.e(), {image(x)}), Packet{}}).at("logits"), test::parity(g + "/output0"), "complete");
  const std::vector<std::vector<int>> zeroed = {{0},    {1},    {2},    {3},       {0, 1},    {0, 2},    {0, 3},
                                                {1, 2}, {1, 3}, {2, 3}, {0, 1, 2}, {0, 1, 3}, {0, 2, 3}, {1, 2, 3}};
  for (std::size_t k = 1; k <= zeroed.size(); ++k) {
    torch::Tensor xk = x.clone();
    for (int c : zeroed[k - 1]) xk.select(1, c).zero_();
    const Packet f = call(s.a(), {image(xk), Packet{}, Packet{}});
    for (int l = 1; l <= 5; ++l)
      close(levels_cat(f, l), test::parity(g + "/output" + std::to_string(15 + 5 * (k - 1) + (l - 1))),
            "subset " + std::to_string(k) + " level " + std::to_string(l));
    close(call(s.d(), {f, Packet{}}).at("logits"), test::parity(g + "/output" + std::to_string(k)), "subset " + std::to_string(k));
  }
}

// In training mode with BatchNorm groups (the released stage-3 pairs), the
// split adapter and decoder give the one-module network's logits and the same
// running statistics afterwards.
TEST(PartNodes, GroupsInTrainingMatchTheNetwork) {
  torch::manual_seed(21);
  auto net_node = test::make_node("unimrseg.net", "{widths: [4, 8, 8, 8], heads: [1, 2, 2, 2, 2], adapter: true, freeze_encoder: true}");
  auto& net = dynamic_cast<ModuleNode&>(*net_node);
  Split s = make_split("[4, 8, 8, 8]", "unimrseg.adapter", ", heads: [1, 2, 2, 2, 2]");
  copy_into(s, net.module());
  net.module().train();
  for (ModuleNode* m : {&s.e(), &s.d(), &s.a()}) m->module().train();
  const torch::Tensor x = torch::randn({4, 4, 16, 16, 8});
  Packet groups;
  groups.tensors["group"] = torch::tensor({0, 1, 1, 2, 2}, torch::kLong);  // complete, then two pairs
  const Packet whole = call(net, {Packet{}, image(x), groups, Packet{}});
  const Packet f = call(s.a(), {image(x), groups, Packet{}});
  const Packet logits = call(s.d(), {f, groups});
  EXPECT_TRUE(torch::allclose(logits.at("logits"), whole.at("logits"), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(levels_cat(f, 3), whole.at("features.3"), 1e-5, 1e-6));
  auto stats = [](torch::nn::Module& m, const std::string& key) {
    for (const auto& [k, t] : model::state_dict_order(m))
      if (k == key) return t.clone();
    return torch::Tensor();
  };
  EXPECT_TRUE(torch::allclose(stats(s.d().module(), "up2.conv.double_conv.1.running_mean"),
                              stats(net.module(), "up2.conv.double_conv.1.running_mean")));
  EXPECT_TRUE(torch::allclose(stats(s.a().module(), "fuse_2.1.running_var"), stats(net.module(), "fuse_2.1.running_var")));
}

// Every adapter variant runs forward and backward on incomplete input and in
// `auto` mode; only the Swin variants have adaptor_transformer weights; an
// adapter linked to a missing encoder is refused by name.
TEST(PartNodes, AdapterVariantsRun) {
  for (const std::string type : {"unimrseg.adapter", "unimrseg.adapter_no_swin", "unimrseg.adapter_no_ra", "unimrseg.adapter_conv"}) {
    const bool swin = type == "unimrseg.adapter" || type == "unimrseg.adapter_no_ra";
    Split s = make_split("[4, 8, 8, 8]", type, swin ? ", heads: [1, 2, 2, 2, 2]" : "");
    bool has_swin = false;
    for (const auto& [k, t] : model::state_dict_order(s.a().module())) has_swin |= k.rfind("adaptor_transformer_", 0) == 0;
    EXPECT_EQ(has_swin, swin) << type;
    s.a().module().train();
    const Packet f = call(s.a(), {image(torch::randn({2, 4, 16, 16, 8})), Packet{}, Packet{}});
    call(s.d(), {f, Packet{}}).at("logits").sum().backward();
    for (const auto& p : s.a().module().parameters()) EXPECT_TRUE(p.grad().defined()) << type;
    for (const auto& p : s.e().module().parameters()) EXPECT_FALSE(p.grad().defined()) << type;
    Packet automatic = image(torch::randn({2, 4, 16, 16, 8}));
    automatic.tensors["present"] = torch::tensor({{1, 1, 1, 1}, {1, 0, 1, 0}}, torch::kLong);
    EXPECT_EQ(levels_cat(call(s.a(), {Packet{}, Packet{}, automatic}), 5).size(0), 2) << type;
  }
  auto ada = test::make_node("unimrseg.adapter", "{encoder: nowhere}");
  try {
    dynamic_cast<ModuleNode&>(*ada).link([](const std::string&) { return nullptr; });
    ADD_FAILURE() << "linking to a missing encoder was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'nowhere'"), std::string::npos) << e.what();
  }
}

}  // namespace umrflow
