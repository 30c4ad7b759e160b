// `image2d.sunrgbd`: RGB-D semantic segmentation samples in the SUN-RGBD
// layout (image2d/layouts.h): colour, depth with all its stored bits, and the
// class numbers of the label map (image2d/image_io.h, read_plane).
#include "image2d/image2d_nodes.h"

#include "image2d/image_io.h"
#include "image2d/layouts.h"

namespace umrflow::image2d {

void SunRgbdSamples::declare(Declaration<SunRgbdSamples>& d) {
  d.type("image2d.sunrgbd", NodeKind::source,
         "SUN-RGBD semantic segmentation samples of one split list (root/image, root/depth, root/label, matched by file stem): "
         "`image` (R, G, B, then depth) and `label` (class numbers, 0 unlabelled).");
  d.output({"image", 3, "float32 (4, H, W): R, G, B / 255, then depth / depth_range"});
  d.output({"label", 3, "int64 (1, H, W): the label map's stored numbers, 0 unlabelled, 1..classes (with labels: true)"});
  d.param(&SunRgbdSamples::root_, param::text("root", std::nullopt, "data set folder holding image/, depth/ and label/"));
  d.param(&SunRgbdSamples::split_,
          param::text("split", std::nullopt, "list of the split's ids, one per line ('#' comments); relative paths are taken from the "
                                             "working directory"));
  d.param(&SunRgbdSamples::classes_, param::integer("classes", 37, "number of classes: label values above it are an error").range(1, 65535));
  d.param(&SunRgbdSamples::depth_range_,
          param::number("depth_range", 0.0,
                        "depth is divided by this; 0 = by the file's own range (65535 for a 16-bit map, 255 for an 8-bit one)")
              .min(0.0));
  d.param(&SunRgbdSamples::depth_format_,
          param::choice("depth_format", "plain", {"plain", "toolbox"},
                        "plain: the stored values; toolbox: the SUN-RGBD toolbox's 16-bit PNGs (and copies made from them), millimetres "
                        "rotated by three bits, turned back into millimetres ((v >> 3) | (v << 13))"));
  d.param(&SunRgbdSamples::need_label_, param::boolean("labels", true, "read label/; false for images without ground truth"));
  d.param(&SunRgbdSamples::on_bad_sample_,
          param::choice("on_bad_sample", "fail", {"fail", "skip"},
                        "an unreadable image, a size mismatch or a label out of range stops the run, or the sample is skipped and "
                        "listed in skipped.tsv"));
  d.param(&SunRgbdSamples::limit_, param::integer("limit", 0, "use only the first N samples of the list; 0 = all").min(0));
}

void SunRgbdSamples::setup() {
  items_ = discover_sunrgbd(root_, split_);
  if (limit_ > 0 && static_cast<std::size_t>(limit_) < items_.size()) items_.resize(static_cast<std::size_t>(limit_));
}

Packet SunRgbdSamples::load(std::int64_t index, Context&) {
  const PairedItem& item = items_.at(static_cast<std::size_t>(index));
  return load_paired(item, on_bad_sample_ == "skip", [&](Packet& p) {
    const Image rgb = to_rgb(read_image(item.rgb));
    Plane depth = read_plane(item.aux);
    if (depth_format_ == "toolbox") {
      if (depth.bits != 16)
        throw std::runtime_error("'" + item.aux + "' is a " + std::to_string(depth.bits) +
                                 "-bit map, not one of the toolbox's 16-bit depth PNGs (use depth_format: plain)");
      for (std::uint16_t& v : depth.values) v = static_cast<std::uint16_t>((v >> 3) | (v << 13));
    }
    check_same_size(depth.width, depth.height, item.aux, rgb, item.rgb);
    torch::Tensor image = torch::empty({4, rgb.height, rgb.width}, torch::kFloat32);
    put_channels(rgb, image.data_ptr<float>());
    const double range = depth_range_ > 0 ? depth_range_ : static_cast<double>((1u << depth.bits) - 1);
    float* d = image[3].data_ptr<float>();
    for (std::size_t i = 0; i < depth.values.size(); ++i) d[i] = static_cast<float>(depth.values[i] / range);
    p.tensors["image"] = image;
    if (need_label_) {
      const Plane label = read_plane(item.gt);
      check_same_size(label.width, label.height, item.gt, rgb, item.rgb);
      torch::Tensor t = torch::empty({1, label.height, label.width}, torch::kLong);
      std::int64_t* out = t.data_ptr<std::int64_t>();
      for (std::size_t i = 0; i < label.values.size(); ++i) {
        if (label.values[i] > classes_)
          throw std::runtime_error("'" + item.gt + "': pixel (" + std::to_string(i % label.width) + ", " + std::to_string(i / label.width) +
                                   ") has label " + std::to_string(label.values[i]) + ", above classes: " + std::to_string(classes_) +
                                   " (labels are 0 unlabelled and 1.." + std::to_string(classes_) +
                                   "; set `classes`, or convert a 0-based map with 255 as void)");
        out[i] = label.values[i];
      }
      p.tensors["label"] = t;
    }
    return std::vector<std::int64_t>{rgb.height, rgb.width};
  });
}

}  // namespace umrflow::image2d
