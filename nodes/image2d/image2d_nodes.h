// image2d_nodes.h: the `image2d.*` data nodes (the SOD source and the 2D
// augmentations), declared here so that the family's one list
// (register_image2d_nodes, image2d_nodes.cpp) sees them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image2d/image_io.h"
#include "image2d/layouts.h"
#include "umrflow/declare.h"
#include "umrflow/node.h"

namespace umrflow::image2d {

/// Throws std::runtime_error naming both files when the image at `path`
/// (`width` x `height`) is not the size of its RGB image: a pair must match.
void check_same_size(int width, int height, const std::string& path, const Image& rgb, const std::string& rgb_path);

/// The image's channels as planes (channels, H, W) of floats at `out`, / 255.
void put_channels(const Image& img, float* out);

/// One sample of a paired-image source: `read()` fills the packet's tensors
/// and returns the RGB image's (height, width); the packet gets the sample's
/// id and tag `shape`. Any failure becomes "sample ID: why", thrown as
/// SkipSample when `skip` (on_bad_sample: skip), else as std::runtime_error.
template <class Read>
Packet load_paired(const PairedItem& item, bool skip, Read read) {
  try {
    Packet p;
    const std::vector<std::int64_t> shape = read(p);
    SampleMeta meta;
    meta.id = item.id;
    meta.tags["shape"] = shape;
    p.samples.push_back(std::move(meta));
    return p;
  } catch (const std::exception& e) {
    const std::string why = "sample " + item.id + ": " + e.what();
    if (skip) throw SkipSample(why);
    throw std::runtime_error(why);
  }
}

/// Source: one RGB-D or RGB-T SOD sample per image of root/RGB. Provides
/// `image` (4, H, W) float32, R, G, B and the second modality as gray, each
/// / 255 (as torchvision's ToTensor), and `label` (1, H, W) float32, the mask
/// / 255. A sample whose images cannot be read or differ in size fails the
/// run with an error naming the files, or is skipped (`on_bad_sample: skip`).
class SodSamples final : public SourceNode {
 public:
  static void declare(Declaration<SodSamples>& d);
  /// Finds the samples (discover_sod), then keeps the first `limit`.
  void setup();

  std::int64_t size() const override { return static_cast<std::int64_t>(items_.size()); }
  Packet load(std::int64_t index, Context&) override;

 private:
  std::string root_, aux_, on_bad_sample_;
  bool need_label_ = true;
  std::int64_t limit_ = 0;
  std::vector<PairedItem> items_;
};

/// Source: the SUN-RGBD samples of one split list (discover_sunrgbd).
/// Provides `image` (4, H, W) float32: R, G, B / 255, then depth / its range
/// (`depth_range`, by default the file's: 65535 for a 16-bit map, 255 for an
/// 8-bit one, so every stored bit counts); and `label` (1, H, W) int64, the
/// stored class numbers, 0 unlabelled and 1..`classes` the classes (the raw
/// SUN-RGBD convention, which keeps zero padding after a rotation
/// unlabelled). A label above `classes`, a colour label map, unreadable
/// images and size mismatches fail with the file named, or skip the sample.
class SunRgbdSamples final : public SourceNode {
 public:
  static void declare(Declaration<SunRgbdSamples>& d);
  /// Finds the samples (discover_sunrgbd), then keeps the first `limit`.
  void setup();

  std::int64_t size() const override { return static_cast<std::int64_t>(items_.size()); }
  Packet load(std::int64_t index, Context&) override;

 private:
  std::string root_, split_, on_bad_sample_, depth_format_;
  bool need_label_ = true;
  std::int64_t limit_ = 0, classes_ = 37;
  double depth_range_ = 0;
  std::vector<PairedItem> items_;
};

/// `image2d.resize`: `image` to `size` bilinearly, `label` by `label_mode`.
class Resize2d final : public SampleNode {
 public:
  static void declare(Declaration<Resize2d>& d);
  void apply(Packet& s, Context& ctx) override;

 private:
  std::vector<std::int64_t> size_;
  std::string label_mode_;
};

/// `image2d.random_rotate`: with probability `p`, a rotation about the centre
/// by an angle uniform in `degrees`, zeros outside.
class RandomRotate2d final : public SampleNode {
 public:
  static void declare(Declaration<RandomRotate2d>& d);
  void apply(Packet& s, Context& ctx) override;

 private:
  std::vector<double> degrees_;
  double p_ = 0;
  std::string label_mode_;
};

/// `image2d.border_crop`: a centred window of random size, up to `border`
/// pixels smaller per axis.
class BorderCrop2d final : public SampleNode {
 public:
  static void declare(Declaration<BorderCrop2d>& d);
  void apply(Packet& s, Context& ctx) override;

 private:
  std::int64_t border_ = 0;
};

/// `image2d.color_jitter`: brightness, contrast and saturation of R, G, B,
/// each by a factor drawn from its range.
class ColorJitter2d final : public SampleNode {
 public:
  static void declare(Declaration<ColorJitter2d>& d);
  void apply(Packet& s, Context& ctx) override;

 private:
  std::vector<double> brightness_, contrast_, saturation_;
};

/// `image2d.normalize`: (x - mean) / std for the first channels of `image`.
class Normalize2d final : public SampleNode {
 public:
  static void declare(Declaration<Normalize2d>& d);
  void apply(Packet& s, Context& ctx) override;

 private:
  std::vector<double> mean_, std_;
};

}  // namespace umrflow::image2d
