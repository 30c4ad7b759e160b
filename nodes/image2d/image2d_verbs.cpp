// The 2D family's data verbs: `synth rgbd` and `synth rgbt`, salient-object
// scenes in the public SOD layouts (image2d/phantom2d.h).
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
  };
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

}  // namespace

void register_image2d_verbs(Registry& registry) {
  registry.add_verb(synth_scenes(false));
  registry.add_verb(synth_scenes(true));
}

}  // namespace umrflow::nodes
