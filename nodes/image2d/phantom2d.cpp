#include "image2d/phantom2d.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <vector>

#include "image2d/image_io.h"
#include "umrflow/files.h"

namespace umrflow::image2d {

namespace fs = std::filesystem;

namespace {

/// A rotated ellipse in pixel coordinates.
struct Blob {
  double cx = 0, cy = 0, rx = 1, ry = 1, angle = 0;
  bool covers(double x, double y) const {
    const double dx = x - cx, dy = y - cy, c = std::cos(angle), s = std::sin(angle);
    const double u = (c * dx + s * dy) / rx, v = (-s * dx + c * dy) / ry;
    return u * u + v * v <= 1.0;
  }
};

class Draw {
 public:
  explicit Draw(std::uint64_t seed) : rng_(seed) {}
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
  double normal(double sd) { return std::normal_distribution<double>(0.0, sd)(rng_); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  double sign() { return uniform(0, 1) < 0.5 ? -1.0 : 1.0; }
  Blob blob(double n, double centre_lo, double centre_hi, double r_lo, double r_hi) {
    return Blob{uniform(centre_lo, centre_hi) * n, uniform(centre_lo, centre_hi) * n, uniform(r_lo, r_hi) * n, uniform(r_lo, r_hi) * n,
                uniform(0, M_PI)};
  }

 private:
  std::mt19937_64 rng_;
};

std::uint8_t to_byte(double v) { return static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

/// A colour `strength` away from `base`, each channel up or down at random.
std::array<double, 3> shifted(Draw& draw, const std::array<double, 3>& base, double strength) {
  std::array<double, 3> out;
  for (int c = 0; c < 3; ++c) out[c] = base[c] + draw.sign() * strength * draw.uniform(0.6, 1.0);
  return out;
}

void make_folder(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path))
    throw std::runtime_error("'" + path + "': cannot create the folder (" + (ec ? ec.message() : std::string("not a folder")) +
                             "); choose another --out");
}

}  // namespace

void write_scene_phantoms(const ScenePhantomOptions& o, void (*progress)(std::int64_t, std::int64_t)) {
  if (o.scenes < 1) throw std::invalid_argument("synth: at least one scene is needed");
  if (o.size < 16) throw std::invalid_argument("synth: scenes are at least 16 pixels wide");
  const std::string aux_folder = o.out + (o.thermal ? "/T" : "/depth");
  for (const std::string& f : {o.out + "/RGB", aux_folder, o.out + "/GT"}) make_folder(f);
  const int n = static_cast<int>(o.size);
  for (std::int64_t s = 1; s <= o.scenes; ++s) {
    Draw draw(o.seed * 1000003ULL + static_cast<std::uint64_t>(s));
    // Background: a colour with a gentle gradient; depth a receding plane
    // (dark far away), or an even temperature.
    const std::array<double, 3> bg{draw.uniform(60, 190), draw.uniform(60, 190), draw.uniform(60, 190)};
    const double gx = draw.uniform(-0.4, 0.4), gy = draw.uniform(-0.4, 0.4);
    const double aux0 = draw.uniform(40, 90), ax = draw.uniform(-0.3, 0.3) * (o.thermal ? 0.3 : 1.0), ay = draw.uniform(0, 0.5);
    const double w = draw.uniform(0.15, 0.85);  // the object's share of colour contrast; 1 - w goes to depth or heat
    // Distractors, each conspicuous in one image only.
    struct Distractor {
      Blob blob;
      bool colour;  // true: colour only; false: depth or heat only
      std::array<double, 3> rgb;
      double aux;
    };
    std::vector<Distractor> distractors;
    for (int k = draw.integer(2, 4); k > 0; --k) {
      Distractor d{draw.blob(n, 0.1, 0.9, 0.06, 0.14), draw.uniform(0, 1) < 0.5, {}, 0};
      d.rgb = d.colour ? shifted(draw, bg, draw.uniform(50, 100)) : bg;
      d.aux = d.colour ? 0 : draw.uniform(60, 110);
      distractors.push_back(d);
    }
    // The salient object: an ellipse, with a second lobe half the time.
    std::vector<Blob> object{draw.blob(n, 0.3, 0.7, 0.12, 0.25)};
    if (draw.uniform(0, 1) < 0.5) {
      Blob lobe = draw.blob(n, 0.3, 0.7, 0.08, 0.15);
      lobe.cx = object[0].cx + draw.uniform(-1, 1) * object[0].rx;
      lobe.cy = object[0].cy + draw.uniform(-1, 1) * object[0].ry;
      object.push_back(lobe);
    }
    const std::array<double, 3> object_rgb = shifted(draw, bg, w * draw.uniform(70, 110));
    const double object_aux = (1 - w) * draw.uniform(70, 120);

    Image rgb{n, n, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(n) * n * 3)};
    Image aux{n, n, 1, std::vector<std::uint8_t>(static_cast<std::size_t>(n) * n)};
    Image gt{n, n, 1, std::vector<std::uint8_t>(static_cast<std::size_t>(n) * n)};
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        const double px = x + 0.5, py = y + 0.5, u = px / n - 0.5, v = py / n - 0.5;
        std::array<double, 3> colour{bg[0] + 40 * (gx * u + gy * v), bg[1] + 40 * (gx * u + gy * v), bg[2] + 40 * (gx * u + gy * v)};
        const double base = aux0 + 60 * (ax * u + ay * v);
        double a = base;
        for (const auto& d : distractors)
          if (d.blob.covers(px, py)) {
            colour = d.rgb;
            a = base + d.aux;
          }
        const bool inside = std::any_of(object.begin(), object.end(), [&](const Blob& b) { return b.covers(px, py); });
        if (inside) {
          colour = object_rgb;
          a = base + object_aux;
        }
        const std::size_t i = static_cast<std::size_t>(y) * n + x;
        for (int c = 0; c < 3; ++c) rgb.pixels[i * 3 + c] = to_byte(colour[c] + draw.normal(6));
        aux.pixels[i] = to_byte(a + draw.normal(o.thermal ? 3 : 4));
        gt.pixels[i] = inside ? 255 : 0;
      }
    char id[16];
    std::snprintf(id, sizeof id, "%04lld", static_cast<long long>(s));
    write_png(o.out + "/RGB/" + id + ".png", rgb);
    write_png(aux_folder + "/" + id + ".png", aux);
    write_png(o.out + "/GT/" + id + ".png", gt);
    if (progress) progress(s, o.scenes);
  }
}


void write_segmentation_phantoms(const SegmentationPhantomOptions& o, void (*progress)(std::int64_t, std::int64_t)) {
  if (o.train < 0 || o.test < 0 || o.train + o.test < 1) throw std::invalid_argument("synth: at least one scene is needed");
  if (o.size < 16) throw std::invalid_argument("synth: scenes are at least 16 pixels wide");
  if (o.classes < 4 || o.classes > 255) throw std::invalid_argument("synth: classes must be 4..255 (wall, floor and object pairs)");
  for (const char* f : {"/image", "/depth", "/label"}) make_folder(o.out + f);
  const int n = static_cast<int>(o.size), objects = static_cast<int>(o.classes) - 2, groups = (objects + 1) / 2;
  // One colour per pair of object classes, spread around the hue circle; wall and floor neutral.
  std::vector<std::array<double, 3>> group_colour;
  for (int g = 0; g < groups; ++g) {
    const double h = 2 * M_PI * g / groups;
    group_colour.push_back({128 + 90 * std::cos(h), 128 + 90 * std::cos(h - 2 * M_PI / 3), 128 + 90 * std::cos(h + 2 * M_PI / 3)});
  }
  std::vector<std::array<std::uint8_t, 3>> palette(static_cast<std::size_t>(o.classes) + 1, {{0, 0, 0}});
  for (int k = 1; k <= o.classes; ++k)
    palette[k] = {static_cast<std::uint8_t>(37 * k % 256), static_cast<std::uint8_t>(91 * k % 256), static_cast<std::uint8_t>(173 * k % 256)};
  std::string train_list, test_list;
  const std::int64_t total = o.train + o.test;
  for (std::int64_t s = 1; s <= total; ++s) {
    Draw draw(o.seed * 2000003ULL + static_cast<std::uint64_t>(s));
    const double gain = draw.uniform(0.7, 1.3);  // illumination
    const std::array<double, 3> wall{draw.uniform(150, 200), draw.uniform(150, 200), draw.uniform(140, 190)};
    const std::array<double, 3> floor{draw.uniform(70, 110), draw.uniform(60, 100), draw.uniform(50, 90)};
    const double horizon = draw.uniform(0.45, 0.65) * n, wall_depth = draw.uniform(3500, 5000);
    struct Object {
      Blob blob;
      int label;
      double depth;
    };
    std::vector<Object> placed;
    for (int k = draw.integer(3, 6); k > 0; --k)
      placed.push_back({draw.blob(n, 0.15, 0.85, 0.08, 0.2), 3 + draw.integer(0, objects - 1), draw.uniform(1200, 3000)});
    Image rgb{n, n, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(n) * n * 3)};
    Plane depth, label;
    depth.width = label.width = depth.height = label.height = n;
    depth.bits = 16;
    depth.values.assign(static_cast<std::size_t>(n) * n, 0);
    label.values.assign(static_cast<std::size_t>(n) * n, 0);
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        const double px = x + 0.5, py = y + 0.5;
        int cls = py < horizon ? 1 : 2;
        std::array<double, 3> colour = cls == 1 ? wall : floor;
        // The floor recedes from 1 m at the bottom edge to the wall at the horizon.
        double d = cls == 1 ? wall_depth : 1000 + (wall_depth - 1000) * (n - py) / (n - horizon);
        for (const Object& obj : placed)
          if (obj.blob.covers(px, py)) {
            cls = obj.label;
            colour = group_colour[static_cast<std::size_t>((obj.label - 3) / 2)];
            d = obj.depth;
            if ((obj.label - 3) % 2 == 1) {  // a dome: up to 500 mm nearer at its centre
              const double dx = (px - obj.blob.cx) / obj.blob.rx, dy = (py - obj.blob.cy) / obj.blob.ry;
              d -= 500 * std::max(0.0, 1 - dx * dx - dy * dy);
            }
          }
        const std::size_t i = static_cast<std::size_t>(y) * n + x;
        for (int c = 0; c < 3; ++c) rgb.pixels[i * 3 + c] = to_byte(gain * colour[c] + draw.normal(8));
        depth.values[i] = draw.uniform(0, 1) < 0.02 ? 0 : static_cast<std::uint16_t>(std::clamp(std::lround(d + draw.normal(15)), 1L, 65535L));
        label.values[i] = static_cast<std::uint16_t>(cls);
      }
    // Unlabelled rings: an object pixel beside a pixel of another class.
    Plane ringed = label;
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        const std::uint16_t v = label.at(x, y);
        if (v < 3) continue;
        const bool edge = (x > 0 && label.at(x - 1, y) != v) || (x + 1 < n && label.at(x + 1, y) != v) ||
                          (y > 0 && label.at(x, y - 1) != v) || (y + 1 < n && label.at(x, y + 1) != v);
        if (edge) ringed.values[static_cast<std::size_t>(y) * n + x] = 0;
      }
    char id[16];
    std::snprintf(id, sizeof id, "%04lld", static_cast<long long>(s));
    write_png(o.out + "/image/" + id + ".png", rgb);
    write_png(o.out + "/depth/" + id + ".png", depth);
    write_png(o.out + "/label/" + id + ".png", ringed, palette);
    (s <= o.train ? train_list : test_list) += std::string(id) + "\n";
    if (progress) progress(s, total);
  }
  write_file_atomically(o.out + "/train.txt", train_list);
  write_file_atomically(o.out + "/test.txt", test_list);
}

}  // namespace umrflow::image2d
