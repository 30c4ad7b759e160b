// `image2d.sod`: RGB-D and RGB-T salient object detection samples from the
// public folder layouts (image2d/layouts.h), decoded as PIL decodes them
// (image2d/image_io.h).
#include "image2d/image2d_nodes.h"

#include "image2d/image_io.h"
#include "image2d/layouts.h"

namespace umrflow::image2d {

void SodSamples::declare(Declaration<SodSamples>& d) {
  d.type("image2d.sod", NodeKind::source,
         "RGB-D or RGB-T salient object detection samples (root/RGB, root/depth or root/T, root/GT, matched by file stem): "
         "`image` (R, G, B, then depth or thermal) and `label` (the saliency mask).");
  d.output({"image", 3, "float32 (4, H, W): R, G, B, then the depth or thermal image as gray (PIL's convert('L')), each / 255"});
  d.output({"label", 3, "float32 (1, H, W): the ground-truth mask as gray / 255 (with labels: true)"});
  d.param(&SodSamples::root_, param::text("root", std::nullopt, "data set folder holding RGB/, the second modality's folder and GT/"));
  d.param(&SodSamples::aux_, param::choice("aux", "depth", {"depth", "T"}, "folder of the second modality: depth (RGB-D) or T (RGB-T)"));
  d.param(&SodSamples::need_label_, param::boolean("labels", true, "read GT/; false for images without ground truth"));
  d.param(&SodSamples::on_bad_sample_,
          param::choice("on_bad_sample", "fail", {"fail", "skip"},
                        "an unreadable image or a size mismatch stops the run, or the sample is skipped and listed in skipped.tsv"));
  d.param(&SodSamples::limit_, param::integer("limit", 0, "use only the first N samples (sorted by file stem); 0 = all").min(0));
}

void SodSamples::setup() {
  items_ = discover_sod(root_, aux_, need_label_);
  if (limit_ > 0 && static_cast<std::size_t>(limit_) < items_.size()) items_.resize(static_cast<std::size_t>(limit_));
}

void check_same_size(int width, int height, const std::string& path, const Image& rgb, const std::string& rgb_path) {
  if (width == rgb.width && height == rgb.height) return;
  throw std::runtime_error("'" + path + "' is " + std::to_string(width) + "x" + std::to_string(height) + " pixels but its RGB image '" +
                           rgb_path + "' is " + std::to_string(rgb.width) + "x" + std::to_string(rgb.height) +
                           ": a pair must be the same size (re-export the image, or remove the pair)");
}

void put_channels(const Image& img, float* out) {
  const std::size_t plane = static_cast<std::size_t>(img.width) * img.height;
  for (std::size_t i = 0; i < plane; ++i)
    for (int c = 0; c < img.channels; ++c) out[c * plane + i] = img.pixels[i * img.channels + c] / 255.0f;
}

Packet SodSamples::load(std::int64_t index, Context&) {
  const PairedItem& item = items_.at(static_cast<std::size_t>(index));
  return load_paired(item, on_bad_sample_ == "skip", [&](Packet& p) {
    const Image rgb = to_rgb(read_image(item.rgb));
    const Image aux = to_gray(read_image(item.aux));
    check_same_size(aux.width, aux.height, item.aux, rgb, item.rgb);
    torch::Tensor image = torch::empty({4, rgb.height, rgb.width}, torch::kFloat32);
    put_channels(rgb, image.data_ptr<float>());
    put_channels(aux, image[3].data_ptr<float>());
    p.tensors["image"] = image;
    if (need_label_) {
      const Image gt = to_gray(read_image(item.gt));
      check_same_size(gt.width, gt.height, item.gt, rgb, item.rgb);
      torch::Tensor label = torch::empty({1, gt.height, gt.width}, torch::kFloat32);
      put_channels(gt, label.data_ptr<float>());
      p.tensors["label"] = label;
    }
    return std::vector<std::int64_t>{rgb.height, rgb.width};
  });
}

}  // namespace umrflow::image2d
