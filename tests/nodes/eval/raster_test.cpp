#include <gtest/gtest.h>

#include <fstream>

#include "eval/raster.h"
#include "test_util.h"

namespace umrflow {

namespace {

const char* const kPython = "/usr/bin/python3";

}  // namespace

// Drawing covers exactly the pixels each call names, clipped to the canvas.
TEST(Raster, ShapesCoverTheirPixels) {
  const raster::Rgb white{255, 255, 255}, red{200, 0, 0}, blue{0, 0, 200};
  raster::Canvas c(20, 10, white);
  c.fill(3, 2, 6, 5, red);  // x 3..5, y 2..4
  c.outline(10, 1, 15, 6, blue);
  c.fill(-5, 8, 2, 30, blue);  // clipped
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 20; ++x) {
      const bool in_fill = x >= 3 && x < 6 && y >= 2 && y < 5;
      const bool on_outline = x >= 10 && x < 15 && y >= 1 && y < 6 && (x == 10 || x == 14 || y == 1 || y == 5);
      const bool clipped = x < 2 && y >= 8;
      const raster::Rgb want = in_fill ? red : (on_outline || clipped) ? blue : white;
      EXPECT_TRUE(c.at(x, y) == want) << x << "," << y;
    }
  raster::Canvas t(12, 7, white);
  t.text(0, 0, "1l", red);  // '1' is 00100 on its first row; lower case draws upper case: 'L' is 10000
  EXPECT_TRUE(t.at(2, 0) == red);
  EXPECT_TRUE(t.at(0, 0) == white);
  EXPECT_TRUE(t.at(6, 0) == red);
  EXPECT_TRUE(t.at(6, 6) == red && t.at(10, 6) == red);  // L's foot, 5 wide
  EXPECT_EQ(raster::Canvas::text_width("1l"), 11);
}

// The PNG decodes with an independent reader (Python's zlib and struct): valid
// chunk CRCs, the size and colour type in IHDR, and every pixel as drawn.
TEST(Raster, PngDecodesToTheCanvas) {
  test::TempDir dir;
  raster::Canvas c(37, 23, {250, 250, 250});
  c.fill(5, 5, 30, 12, {10, 120, 230});
  c.dot(18, 17, 3, {200, 30, 40});
  c.text(1, 1, "WT 87%", {0, 0, 0});
  std::ofstream(dir.path() + "/a.png", std::ios::binary) << c.png();
  std::string raw;
  for (int y = 0; y < c.height(); ++y)
    for (int x = 0; x < c.width(); ++x) {
      const raster::Rgb p = c.at(x, y);
      raw += {static_cast<char>(p.r), static_cast<char>(p.g), static_cast<char>(p.b)};
    }
  std::ofstream(dir.path() + "/a.rgb", std::ios::binary) << raw;
  const std::string script = dir.write("read.py", R"(import struct, sys, zlib
d = sys.argv[1]
b = open(d + '/a.png', 'rb').read()
assert b[:8] == b'\x89PNG\r\n\x1a\n', 'signature'
pos, chunks = 8, {}
while pos < len(b):
    n, = struct.unpack('>I', b[pos:pos + 4])
    kind, body, crc = b[pos + 4:pos + 8], b[pos + 8:pos + 8 + n], struct.unpack('>I', b[pos + 8 + n:pos + 12 + n])[0]
    assert zlib.crc32(kind + body) == crc, kind
    chunks[kind] = chunks.get(kind, b'') + body
    pos += 12 + n
w, h, depth, colour, comp, filt, lace = struct.unpack('>IIBBBBB', chunks[b'IHDR'])
data = zlib.decompress(chunks[b'IDAT'])
rows = [data[y * (3 * w + 1):(y + 1) * (3 * w + 1)] for y in range(h)]
assert all(r[0] == 0 for r in rows), 'filter types'
pixels = b''.join(r[1:] for r in rows)
print(w, h, depth, colour, lace, pixels == open(d + '/a.rgb', 'rb').read(), b'IEND' in chunks)
)");
  std::string out;
  ASSERT_EQ(test::run_command(std::string(kPython) + " " + script + " " + dir.path() + " 2>&1", &out), 0) << out;
  EXPECT_EQ(out, "37 23 8 2 0 True True\n");
}

}  // namespace umrflow
