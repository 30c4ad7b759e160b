#include <gtest/gtest.h>

#include <caffe2/serialize/inline_container.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "instance.h"
#include "io/state_dict.h"
#include "unimrseg/unimrseg_net.h"
#include "test_paths.h"
#include "test_util.h"

namespace umrflow {

namespace {
const std::string kBin = UMRFLOW_BINARY;
const std::string kKeys = std::string(UMRFLOW_SOURCE_DIR) + "/../shared/reference/state_dict_keys/";
bool have_python_torch() { return test::run_command("/usr/bin/python3 -c 'import torch' 2>/dev/null", nullptr) == 0; }

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
}  // namespace

// A stage-3 run checkpoint exported with `umrflow weights export` loads in
// Python with torch.load as a dict whose keys, shapes, dtypes and order are
// those of state_dict_keys/stage3.tsv, with our values.
TEST(StateDict, ExportedStage3LoadsInPython) {
  if (!have_python_torch()) GTEST_SKIP() << "python3-torch is not installed";
  if (!std::filesystem::exists(kKeys + "stage3.tsv")) GTEST_SKIP() << "state_dict_keys are not beside the project";
  test::TempDir dir;
  model::UniMRSegNetOptions o;
  o.adapter = true;
  model::UniMRSegNet net(o);
  io::NamedTensors named;
  for (const auto& [k, t] : model::state_dict_order(*net)) named.emplace_back("net." + k, t);
  named.emplace_back("umrflow.epoch", torch::tensor(std::int64_t{3}));
  save_checkpoint(dir.path() + "/last.pt", named, nullptr);
  std::string out;
  ASSERT_EQ(test::run_command(kBin + " weights export " + dir.path() + "/last.pt " + dir.path() + "/stage3.pt 2>&1", &out), 0) << out;
  const std::string script = dir.write("check.py",
                                       "import sys, torch\n"
                                       "sd = torch.load(sys.argv[1])\n"
                                       "assert type(sd) is dict, type(sd)\n"
                                       "with open(sys.argv[2], 'w') as f:\n"
                                       "    f.write('key\\tshape\\tdtype\\n')\n"
                                       "    for k, v in sd.items():\n"
                                       "        f.write('%s\\t%s\\t%s\\n' % (k, tuple(v.shape), str(v.dtype).replace('torch.', '')))\n"
                                       "    f.write('#sum\\t%.6e\\n' % sum(float(v.double().sum()) for v in sd.values()))\n");
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + script + " " + dir.path() + "/stage3.pt " + dir.path() + "/seen.tsv 2>&1", &out), 0) << out;
  auto seen = lines_of(dir.path() + "/seen.tsv");
  const std::string sum_line = seen.back();
  seen.pop_back();
  EXPECT_EQ(seen, lines_of(kKeys + "stage3.tsv"));
  double sum = 0;
  for (const auto& [k, t] : model::state_dict_order(*net)) sum += t.to(torch::kFloat64).sum().item<double>();
  EXPECT_NEAR(std::stod(sum_line.substr(5)), sum, 1e-5 * std::max(1.0, std::abs(sum)));
}

// What Python's torch.save(model.state_dict()) writes - an OrderedDict, here
// nested under 'state_dict' with DataParallel's 'module.' prefix, float32 and
// int64 tensors, a non-contiguous one - imports with every tensor equal
// (compared with raw bytes Python writes beside it).
TEST(StateDict, PythonOrderedDictImportsExactly) {
  if (!have_python_torch()) GTEST_SKIP() << "python3-torch is not installed";
  test::TempDir dir;
  const std::string script = dir.write("make.py",
                                       "import sys, collections, torch\n"
                                       "torch.manual_seed(0)\n"
                                       "sd = collections.OrderedDict()\n"
                                       "sd['inc.double_conv.0.weight'] = torch.randn(4, 2, 3, 3, 3)\n"
                                       "sd['inc.double_conv.1.num_batches_tracked'] = torch.tensor(7)\n"
                                       "sd['outc.conv.weight'] = torch.randn(5, 3).t()\n"
                                       "sd['x.big'] = torch.arange(70000, dtype=torch.int64) - 35000\n"
                                       "sd._metadata = collections.OrderedDict([('', {'version': 1})])\n"
                                       "wrapped = {'epoch': 3, 'state_dict': collections.OrderedDict(('module.' + k, v) for k, v in sd.items())}\n"
                                       "torch.save(wrapped, sys.argv[1])\n"
                                       "torch.save(sd, sys.argv[2])\n"
                                       "with open(sys.argv[3], 'wb') as f:\n"
                                       "    for v in sd.values(): f.write(v.contiguous().numpy().tobytes())\n");
  std::string out;
  const std::string wrapped = dir.path() + "/wrapped.pt", plain = dir.path() + "/plain.pt", raw = dir.path() + "/raw.bin";
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + script + " " + wrapped + " " + plain + " " + raw + " 2>&1", &out), 0) << out;
  std::ifstream in(raw, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  for (const std::string& file : {wrapped, plain}) {
    const io::NamedTensors sd = io::read_state_dict(file);
    ASSERT_EQ(sd.size(), 4u) << file;
    EXPECT_EQ(sd[0].first, "inc.double_conv.0.weight");
    EXPECT_EQ(sd[1].first, "inc.double_conv.1.num_batches_tracked");
    EXPECT_EQ(sd[1].second.scalar_type(), torch::kInt64);
    EXPECT_EQ(sd[1].second.item<std::int64_t>(), 7);
    EXPECT_EQ(sd[2].second.sizes(), (std::vector<std::int64_t>{3, 5}));
    std::size_t offset = 0;
    for (const auto& [k, t] : sd) {
      const std::size_t n = t.numel() * t.element_size();
      ASSERT_LE(offset + n, bytes.size());
      EXPECT_EQ(std::memcmp(t.contiguous().data_ptr(), bytes.data() + offset, n), 0) << k;
      offset += n;
    }
    EXPECT_EQ(offset, bytes.size());
  }
  // The CLI writes a checkpoint that a graph's `init.from` reads under the module id.
  ASSERT_EQ(test::run_command(kBin + " weights import " + wrapped + " " + dir.path() + "/init.pt --module net 2>&1", &out), 0) << out;
  torch::serialize::InputArchive a;
  a.load_from(dir.path() + "/init.pt");
  torch::Tensor t;
  ASSERT_TRUE(a.try_read("net.x.big", t));
  EXPECT_EQ(t[69999].item<std::int64_t>(), 34999);
}

// Files that are not state dicts are refused with the file's name and why.
TEST(StateDict, BadFilesAreNamed) {
  test::TempDir dir;
  const std::string junk = dir.write("junk.pt", "not a zip archive");
  try {
    io::read_state_dict(junk);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(io::read_state_dict(dir.path() + "/absent.pt"), std::runtime_error);
  if (!have_python_torch()) return;
  const std::string script = dir.write("bad.py", "import sys, torch\ntorch.save([1, 2], sys.argv[1])\n");
  std::string out;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + script + " " + dir.path() + "/list.pt", &out), 0);
  try {
    io::read_state_dict(dir.path() + "/list.pt");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("list.pt"), std::string::npos) << e.what();
  }
}

namespace {

/// A torch.save-style zip holding `pickle` as data.pkl and `records` under data/.
std::string write_pickle_zip(const std::string& path, const std::string& pickle, const std::vector<std::pair<std::string, std::string>>& records = {}) {
  caffe2::serialize::PyTorchStreamWriter w(path);
  w.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (const auto& [name, bytes] : records) w.writeRecord("data/" + name, bytes.data(), bytes.size());
  w.writeEndOfFile();
  return path;
}

std::string read_error(const std::string& path) {
  try {
    io::read_state_dict(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

std::string unicode(const std::string& v) {
  const auto n = static_cast<std::uint32_t>(v.size());
  std::string out = "X";
  out.append(reinterpret_cast<const char*>(&n), 4);
  return out + v;
}

}  // namespace

// Tuples nested 200,000 deep are refused with the file named, before their
// destruction could overflow the stack.
TEST(StateDict, DeepPickleIsRefused) {
  test::TempDir dir;
  std::string pickle = "\x80\x02)";
  pickle += std::string(200000, '\x85');  // TUPLE1, over and over
  pickle += ".";
  const std::string e = read_error(write_pickle_zip(dir.path() + "/deep.pt", pickle));
  EXPECT_NE(e.find("deep.pt"), std::string::npos) << e;
  EXPECT_NE(e.find("nested deeper"), std::string::npos) << e;
}

// A tensor whose declared size runs past its storage record (here 2^31 x 2^31
// over 4 floats) is refused before anything is allocated.
TEST(StateDict, TensorLargerThanItsStorageIsRefused) {
  test::TempDir dir;
  const std::string big = std::string("J\xff\xff\xff\x7f", 5);
  const std::string pickle = std::string("\x80\x02") + "ctorch._utils\n_rebuild_tensor_v2\n(" + "(" + unicode("storage") +
                             "ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") + "K\x04" + "tQ" + std::string("K\x00", 2) +
                             "(" + big + big + "t" + "(K\x01K\x01t" + "\x89" + "tR.";
  const std::string path = write_pickle_zip(dir.path() + "/huge.pt", pickle, {{"0", std::string(16, '\0')}});
  const std::string e = read_error(path);
  EXPECT_NE(e.find("huge.pt"), std::string::npos) << e;
  EXPECT_NE(e.find("elements of storage but its record holds 4"), std::string::npos) << e;
}

// A view that repeats its storage's elements (stride 0, 2^30 of them over 4
// floats) is refused before the clone could allocate gigabytes.
TEST(StateDict, ViewRepeatingItsStorageIsRefused) {
  test::TempDir dir;
  const std::string big = std::string("J\x00\x00\x00\x40", 5);
  const std::string pickle = std::string("\x80\x02") + "ctorch._utils\n_rebuild_tensor_v2\n(" + "(" + unicode("storage") +
                             "ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") + "K\x04" + "tQ" + std::string("K\x00", 2) +
                             "(" + big + "t" + "(" + std::string("K\x00", 2) + "t" + "\x89" + "tR.";
  const std::string path = write_pickle_zip(dir.path() + "/repeat.pt", pickle, {{"0", std::string(16, '\0')}});
  const std::string e = read_error(path);
  EXPECT_NE(e.find("repeat.pt"), std::string::npos) << e;
  EXPECT_NE(e.find("more elements than its storage record holds (4)"), std::string::npos) << e;
}

// A LONG1 integer wider than 64 bits (9 bytes here) is refused, not shifted
// past the width of its type.
TEST(StateDict, IntegerWiderThan64BitsIsRefused) {
  test::TempDir dir;
  const std::string pickle = std::string("\x80\x02\x8a\x09", 4) + std::string(9, '\x7f') + ".";
  const std::string e = read_error(write_pickle_zip(dir.path() + "/wide.pt", pickle));
  EXPECT_NE(e.find("wide.pt"), std::string::npos) << e;
  EXPECT_NE(e.find("LONG1 beyond 64 bits"), std::string::npos) << e;
}

// Every input a fuzz campaign found (tests/fuzz/findings) now gives an error
// that names the file, not a crash, a hang or an allocation of gigabytes.
TEST(StateDict, FuzzFindingsAreRefused) {
  const std::string dir = std::string(UMRFLOW_SOURCE_DIR) + "/tests/fuzz/findings";
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("state_dict_", 0) != 0) continue;
    ++seen;
    const std::string e = read_error(entry.path().string());
    EXPECT_NE(e.find(entry.path().filename().string()), std::string::npos) << e;
  }
  EXPECT_GE(seen, 1);
}

// BININT2 is little-endian: a tensor of 258 = 0x0102 floats (size and storage
// length written with BININT2) reads with that size and its values in order.
TEST(StateDict, TwoByteIntegersAreLittleEndian) {
  test::TempDir dir;
  const std::string n258 = std::string("M\x02\x01", 3);
  const std::string pickle = std::string("\x80\x02}") + unicode("w") + "ctorch._utils\n_rebuild_tensor_v2\n(" + "(" +
                             unicode("storage") + "ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") + n258 + "tQ" +
                             std::string("K\x00", 2) + "(" + n258 + "t" + "(K\x01t" + "\x89" + "tRs.";
  std::vector<float> values(258);
  for (std::size_t k = 0; k < values.size(); ++k) values[k] = static_cast<float>(k);
  const std::string bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  const auto tensors = io::read_state_dict(write_pickle_zip(dir.path() + "/le.pt", pickle, {{"0", bytes}}));
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(tensors[0].first, "w");
  ASSERT_EQ(tensors[0].second.numel(), 258);
  EXPECT_EQ(tensors[0].second[257].item<float>(), 257.0f);
}

}  // namespace umrflow
