// raster.h: a small RGB canvas for report figures that must exist as PNG (a
// box plot to paste into a slide or a paper draft), with a 5x7 bitmap font and
// a PNG encoder on zlib. Only what the reports draw: filled and outlined
// rectangles, axis-parallel lines, dots and text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace umrflow::raster {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};

class Canvas {
 public:
  Canvas(int width, int height, Rgb background);
  int width() const { return width_; }
  int height() const { return height_; }
  Rgb at(int x, int y) const;

  /// Pixels x0 <= x < x1, y0 <= y < y1 (clipped to the canvas; corners in any order).
  void fill(int x0, int y0, int x1, int y1, Rgb c);
  /// The outline of that rectangle, one pixel wide.
  void outline(int x0, int y0, int x1, int y1, Rgb c);
  void hline(int x0, int x1, int y, Rgb c, int thickness = 1);
  void vline(int x, int y0, int y1, Rgb c, int thickness = 1);
  /// A filled disc of radius r.
  void dot(int cx, int cy, int r, Rgb c);
  /// Text from its top-left corner, each glyph 5x7 pixels times `scale` with
  /// one column of spacing; lower case is drawn as upper case, characters
  /// without a glyph as a blank.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 1);
  /// The width `text` would take.
  static int text_width(const std::string& s, int scale = 1);

  /// The canvas as a PNG file's bytes (8-bit RGB, no interlace).
  std::string png() const;

 private:
  int width_, height_;
  std::vector<std::uint8_t> pixels_;  // RGB, row-major
};

}  // namespace umrflow::raster
