#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"
#include "umrflow/doc.h"

namespace umrflow {

using test::position_of;
using test::TempDir;

// Every value and key keeps the line and column where it was written.
TEST(Doc, RemembersLocations) {
  const std::string text = "a: 1\nb:\n  c: [x, y]\n";
  Doc d = parse_yaml(text, "f.yaml");
  const Doc* c = d.find("b")->find("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->where().line, 3);
  EXPECT_EQ(c->where().column, 6);
  EXPECT_EQ(c->items()[1].where().column, 10);
  EXPECT_EQ(d.find_entry("b")->key_where.line, 2);
}

// A YAML syntax error is a diagnostic at the broken place.
TEST(Doc, SyntaxErrorHasLocation) {
  try {
    parse_yaml("a: [1, 2\nb: 3\n", "f.yaml");
    FAIL();
  } catch (const GraphError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u);
    EXPECT_EQ(e.diagnostics().items()[0].where.file, "f.yaml");
    EXPECT_GE(e.diagnostics().items()[0].where.line, 1);
    EXPECT_NE(e.diagnostics().items()[0].message.find("YAML syntax"), std::string::npos);
  }
}

// A duplicate key is reported with both places.
TEST(Doc, DuplicateKeyIsAnError) {
  try {
    parse_yaml("a: 1\na: 2\n", "f.yaml");
    FAIL();
  } catch (const GraphError& e) {
    EXPECT_EQ(e.diagnostics().items()[0].where.line, 2);
    EXPECT_NE(e.diagnostics().items()[0].message.find("f.yaml:1:1"), std::string::npos);
  }
}

// Includes merge maps key by key and lists of nodes by id; the including file wins.
TEST(Doc, IncludeMergesById) {
  TempDir dir;
  dir.write("base.yaml",
            "seed: 1\nname: base\ndata:\n  - {id: a, type: t, p: 1}\n  - {id: b, type: t}\ntrain: {epochs: 3, lr: 2}\n");
  const std::string top = dir.write("top.yaml",
                                    "include: base.yaml\nname: top\ndata:\n  - {id: a, p: 5}\n  - {id: c, type: u}\n"
                                    "train: {epochs: 9}\n");
  Doc d = load_graph_doc(top);
  EXPECT_EQ(d.find("include"), nullptr);
  EXPECT_EQ(d.find("name")->text(), "top");
  EXPECT_EQ(d.find("seed")->text(), "1");
  const auto& items = d.find("data")->items();
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].find("p")->text(), "5");
  EXPECT_EQ(items[0].find("type")->text(), "t");
  EXPECT_EQ(items[2].find("id")->text(), "c");
  EXPECT_EQ(d.find("train")->find("epochs")->text(), "9");
  EXPECT_EQ(d.find("train")->find("lr")->text(), "2");
  // Locations still point into the file that wrote each value.
  EXPECT_NE(items[1].where().file.find("base.yaml"), std::string::npos);
  EXPECT_NE(items[0].find("p")->where().file.find("top.yaml"), std::string::npos);
}

// A file that includes itself (through another) is reported, not looped on.
TEST(Doc, IncludeCycleIsReported) {
  TempDir dir;
  dir.write("a.yaml", "include: b.yaml\nx: 1\n");
  dir.write("b.yaml", "include: [a.yaml]\ny: 2\n");
  try {
    load_graph_doc(dir.path() + "/a.yaml");
    FAIL();
  } catch (const GraphError& e) {
    EXPECT_NE(std::string(e.what()).find("include cycle"), std::string::npos);
    EXPECT_NE(e.diagnostics().items()[0].where.file.find("b.yaml"), std::string::npos);
  }
}

// A missing include names the including file and line.
TEST(Doc, MissingIncludeNamesTheIncluder) {
  TempDir dir;
  const std::string top = dir.write("top.yaml", "x: 1\ninclude: [nothere.yaml]\n");
  try {
    load_graph_doc(top);
    FAIL();
  } catch (const GraphError& e) {
    EXPECT_EQ(e.diagnostics().items()[0].where.line, 2);
    EXPECT_NE(std::string(e.what()).find("nothere.yaml"), std::string::npos);
  }
}

// --set walks maps by key and node lists by id, parses values as YAML, and creates keys.
TEST(Doc, OverridesWalkMapsAndIds) {
  Doc d = parse_yaml("train: {epochs: 3}\ndata:\n  - {id: crop, size: [1, 2]}\n", "f");
  Diagnostics diags;
  apply_override(d, "train.epochs=7", diags);
  apply_override(d, "data.crop.size=[4, 5, 6]", diags);
  apply_override(d, "data.crop.type=other", diags);
  apply_override(d, "train.optimizer.lr=0.5", diags);
  ASSERT_TRUE(diags.empty()) << diags.str();
  EXPECT_EQ(d.find("train")->find("epochs")->text(), "7");
  const Doc* crop = &d.find("data")->items()[0];
  EXPECT_EQ(crop->find("size")->items().size(), 3u);
  EXPECT_EQ(crop->find("type")->text(), "other");
  EXPECT_EQ(d.find("train")->find("optimizer")->find("lr")->text(), "0.5");
  EXPECT_EQ(crop->find("size")->where().file, "<--set data.crop.size=[4, 5, 6]>");
}

// A bad override path says which segment is wrong and suggests ids.
TEST(Doc, OverrideErrors) {
  Doc d = parse_yaml("data:\n  - {id: crop}\n", "f");
  Diagnostics diags;
  apply_override(d, "data.corp.size=3", diags);
  apply_override(d, "no_equals_sign", diags);
  ASSERT_EQ(diags.size(), 2u);
  EXPECT_NE(diags.items()[0].message.find("did you mean 'crop'"), std::string::npos);
  EXPECT_EQ(diags.items()[0].where.column, 6);
  EXPECT_NE(diags.items()[1].message.find("PATH=VALUE"), std::string::npos);
}

// The YAML writer round-trips a document.
TEST(Doc, WriterRoundTrips) {
  const std::string text =
      "umrflow: 1\nname: \"a: b\"\ndata:\n  - {id: x, shape: [1, 2], nested: {k: v}}\n  - id: y\n    list:\n      - {a: 1}\n";
  Doc d = parse_yaml(text, "f");
  Doc again = parse_yaml(to_yaml(d), "g");
  EXPECT_EQ(to_yaml(again), to_yaml(d));
  EXPECT_EQ(again.find("name")->text(), "a: b");
  EXPECT_EQ(again.find("data")->items()[0].find("nested")->find("k")->text(), "v");
  EXPECT_EQ(again.find("data")->items()[1].find("list")->items()[0].find("a")->text(), "1");
}

// A graph path naming a device, a folder or a huge file is refused before
// it is read (`include: /dev/zero` read until memory ran out).
TEST(Doc, NonRegularOrHugeGraphFilesAreRefused) {
  test::TempDir dir;
  const std::string big = dir.path() + "/big.yaml";
  { std::ofstream(big) << std::string((16u << 20) + 1, '#'); }
  for (const auto& [path, says] : std::vector<std::pair<std::string, std::string>>{
           {"/dev/zero", "not a regular file"}, {dir.path(), "not a regular file"}, {big, "larger than 16 MiB"}}) {
    try {
      load_yaml_file(path);
      ADD_FAILURE() << path;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}


// An alias that contains itself and an alias bomb are errors at a location,
// not a stack overflow or gigabytes of expansion.
TEST(Doc, AliasCyclesAndBombsAreRefused) {
  auto message = [](const std::string& text) {
    try {
      parse_yaml(text, "a.yaml");
    } catch (const GraphError& e) {
      EXPECT_EQ(e.diagnostics().items().front().where.file, "a.yaml");
      return e.diagnostics().items().front().message;
    }
    return std::string("no error");
  };
  EXPECT_NE(message("a: &a [*a]\n").find("nested deeper than"), std::string::npos);
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) bomb += (k ? ", *a" : "*a") + std::to_string(i - 1);
    bomb += "]\n";
  }
  EXPECT_NE(message(bomb).find("expands to more than"), std::string::npos);
  // Shared aliases within the limits still expand.
  Doc ok = parse_yaml("a: &a {x: 1}\nb: *a\n", "ok.yaml");
  EXPECT_EQ(ok.find("b")->find("x")->text(), "1");
}

// An index too long for a number is an unknown path segment, not an internal error.
TEST(Doc, OverrideWithHugeIndex) {
  Doc root = parse_yaml("data:\n  - {id: a, x: 1}\n", "g.yaml");
  Diagnostics d;
  apply_override(root, "data.99999999999999999999999.x=1", d);
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d.items().front().where.file.rfind("<--set ", 0), 0u) << d.str();
}

// Relative paths resolve against the file that wrote them, or against the
// working directory when they came with --set.
TEST(Doc, BaseFolderOfOverridesIsTheWorkingDirectory) {
  EXPECT_EQ(base_folder({"graphs/phantoms/stage2.yaml", 3, 1}), "graphs/phantoms");
  Doc root = parse_yaml("plugins: []\n", "graphs/g.yaml");
  Diagnostics d;
  apply_override(root, "plugins=[sub/libx.so]", d);
  ASSERT_TRUE(d.empty()) << d.str();
  EXPECT_EQ(base_folder(root.find("plugins")->items().front().where()), "");
}

}  // namespace umrflow
