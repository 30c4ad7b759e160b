// The 2D family's data verbs: `synth rgbd` and `synth rgbt`, salient-object
// scenes in the public SOD layouts, and `synth sunrgbd`, segmentation scenes
// in the SUN-RGBD layout (image2d/phantom2d.h).
#include <cstdio>

#include "builtin.h"
#include "image2d/phantom2d.h"
#include "umrflow/registry.h"

namespace umrflow::nodes {

namespace {

void progress(std::int64_t i, std::int64_t n) {
  std::fprintf(stderr, "\r  scene %lld/%lld", static_cast<long long>(i), static_cast<long long>(n));
  if (i == n) std::fprintf(stderr, "\n");
}

VerbSpec synth_scenes(bool thermal) {
  VerbSpec v;
  v.path = {"synth", thermal ? "rgbt" : "rgbd"};
  v.group_summary = "write synthetic data sets";
  v.summary = std::string("salient-object scenes in the ") + (thermal ? "RGB-T" : "RGB-D") + " SOD layout (RGB/, " +
              (thermal ? "T/" : "depth/") + ", GT/): the object's cue split between colour and " + (thermal ? "heat" : "depth") +
              ", distractors in each";
  v.options = {
      param::integer("scenes", 16, "number of scenes").range(1, 1000000),
      param::integer("size", 64, "width and height in pixels").range(16, 4096),
      param::integer("seed", 1, "seed; the same seed writes the same scenes").min(0),
      param::text("out", std::nullopt, "data set folder to write RGB/, " + std::string(thermal ? "T/" : "depth/") + " and GT/ into"),
      param::boolean("overwrite", false, "write into OUT even when it is not empty"),
  };
  v.output_folders = {"out"};
  v.run = [thermal](const VerbCall& c) {
    image2d::ScenePhantomOptions o;
    o.scenes = c.options.get_int("scenes");
    o.size = c.options.get_int("size");
    o.seed = static_cast<std::uint64_t>(c.options.get_int("seed"));
    o.thermal = thermal;
    o.out = c.options.get_text("out");
    std::fprintf(stderr, "writing %lld scene(s) of %lldx%lld into %s\n", static_cast<long long>(o.scenes), static_cast<long long>(o.size),
                 static_cast<long long>(o.size), o.out.c_str());
    image2d::write_scene_phantoms(o, progress);
    return 0;
  };
  return v;
}

VerbSpec synth_segmentation() {
  VerbSpec v;
  v.path = {"synth", "sunrgbd"};
  v.group_summary = "write synthetic data sets";
  v.summary = "indoor-like segmentation scenes in the SUN-RGBD layout (image/, depth/ as 16-bit mm, label/ as class numbers, "
              "train.txt, test.txt): object classes in pairs told apart by colour and by depth shape, so only both tell each class";
  v.options = {
      param::integer("train", 48, "scenes listed in train.txt").range(0, 1000000),
      param::integer("test", 16, "scenes listed in test.txt").range(0, 1000000),
      param::integer("size", 64, "width and height in pixels").range(16, 4096),
      param::integer("classes", 8, "classes: 1 wall, 2 floor, the rest objects").range(4, 255),
      param::integer("seed", 1, "seed; the same seed writes the same scenes").min(0),
      param::text("out", std::nullopt, "data set folder to write image/, depth/, label/ and the split lists into"),
      param::boolean("overwrite", false, "write into OUT even when it is not empty"),
  };
  v.output_folders = {"out"};
  v.run = [](const VerbCall& c) {
    image2d::SegmentationPhantomOptions o;
    o.train = c.options.get_int("train");
    o.test = c.options.get_int("test");
    o.size = c.options.get_int("size");
    o.classes = c.options.get_int("classes");
    o.seed = static_cast<std::uint64_t>(c.options.get_int("seed"));
    o.out = c.options.get_text("out");
    std::fprintf(stderr, "writing %lld scene(s) of %lldx%lld, %lld classes, into %s\n", static_cast<long long>(o.train + o.test),
                 static_cast<long long>(o.size), static_cast<long long>(o.size), static_cast<long long>(o.classes), o.out.c_str());
    image2d::write_segmentation_phantoms(o, progress);
    return 0;
  };
  return v;
}

}  // namespace

void register_image2d_verbs(Registry& registry) {
  registry.add_verb(synth_scenes(false));
  registry.add_verb(synth_scenes(true));
  registry.add_verb(synth_segmentation());
}

}  // namespace umrflow::nodes
