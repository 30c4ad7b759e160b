#include <gtest/gtest.h>
#include <zlib.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "image2d/image_io.h"
#include "test_util.h"

namespace umrflow::image2d {

namespace {

const char* const kPython = "/usr/bin/python3";

// The independent reference: PIL (python3-pil) and numpy write the test images
// and store the pixels read_image must return for each, `file`.bin (uint8,
// rows x columns x channels) with `file`.txt ("width height channels"). PIL
// cannot write interlaced PNG, 16-bit colour PNG or some BMP variants: those
// are written by the small writers below, and PIL checks each decodes to the
// samples written before it stands as a reference.
const char* const kMakeImages = R"py(import struct, sys, zlib
import numpy as np
from PIL import Image

d = sys.argv[1]
rng = np.random.default_rng(7)

def ref(file, arr):
    a = np.ascontiguousarray(arr, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    a.tofile(f'{d}/{file}.bin')
    with open(f'{d}/{file}.txt', 'w') as f:
        f.write(f'{a.shape[1]} {a.shape[0]} {a.shape[2]}\n')

def pil(file, mode=None):
    im = Image.open(f'{d}/{file}')
    ref(file, np.asarray(im if mode is None else im.convert(mode)))

def noise(*shape):
    return rng.integers(0, 256, shape, dtype=np.uint8)

def scale16(a):  # round(v * 255 / 65535), the documented 16-to-8-bit rule (no ties: v / 257 is never k + 1/2)
    return (a.astype(np.int64) * 255 + 32767) // 65535

def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

def png(file, a, bits, color_type, interlace):
    h, w = a.shape[:2]
    samples = a.astype('>u2') if bits == 16 else a.astype(np.uint8)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b''
    for x0, y0, dx, dy in (passes if interlace else [(0, 0, 1, 1)]):
        sub = samples[y0::dy, x0::dx]
        if sub.size:
            raw += b''.join(b'\0' + row.tobytes() for row in sub)
    ihdr = struct.pack('>IIBBBBB', w, h, bits, color_type, 0, 0, interlace)
    with open(f'{d}/{file}', 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))

def bmp(file, w, h, bits, rows, palette=b'', masks=None):
    stride = (w * bits + 31) // 32 * 4
    pixels = b''.join(r.ljust(stride, b'\0') for r in rows)
    dib = struct.pack('<IiiHHIIiiII', 40 if masks is None else 124, w, h, 1, bits, 0 if masks is None else 3,
                      len(pixels), 2835, 2835, len(palette) // 4, 0)
    if masks is not None:
        dib += struct.pack('<IIII', *masks) + b'BGRs' + bytes(36 + 12) + struct.pack('<IIII', 4, 0, 0, 0)
    offset = 14 + len(dib) + len(palette)
    with open(f'{d}/{file}', 'wb') as f:
        f.write(b'BM' + struct.pack('<IHHI', offset + len(pixels), 0, 0, offset) + dib + palette + pixels)

# PNG written by PIL: gray, gray+alpha, RGB, RGBA, 1-bit, 8- and 4-bit palette, palette with tRNS, 16-bit gray.
for mode, shape in [('L', (23, 37)), ('LA', (23, 37, 2)), ('RGB', (23, 37, 3)), ('RGBA', (23, 37, 4))]:
    Image.fromarray(noise(*shape), mode).save(f'{d}/{mode}.png')
    pil(f'{mode}.png')
Image.fromarray(noise(19, 29) > 127).save(f'{d}/bw.png')
pil('bw.png', 'L')
for name, colors, extra in [('pal8.png', 256, {}), ('pal4.png', 16, {'bits': 4}),
                            ('pal_trns.png', 256, {'transparency': noise(256).tobytes()})]:
    im = Image.frombytes('P', (29, 19), rng.integers(0, colors, (19, 29), dtype=np.uint8).tobytes())
    im.putpalette(noise(colors * 3).tobytes())
    im.save(f'{d}/{name}', **extra)
    pil(name, 'RGBA' if 'transparency' in extra else 'RGB')
gray16 = rng.integers(0, 65536, (21, 33), dtype=np.uint16)
Image.fromarray(gray16).save(f'{d}/gray16.png')
back = np.asarray(Image.open(f'{d}/gray16.png'))
assert (back == gray16).all(), 'PIL did not write a 16-bit gray PNG'  # PIL 9 reads it as int32 mode I
ref('gray16.png', scale16(back))

# PNG written here: Adam7 (8-bit RGB, every 16-bit gray value, 16-bit RGBA), 16-bit RGB. PIL keeps the
# high byte of 16-bit colour.
rgb = noise(19, 29, 3)
png('adam7_rgb.png', rgb, 8, 2, 1)
assert (np.asarray(Image.open(f'{d}/adam7_rgb.png')) == rgb).all()
pil('adam7_rgb.png')
ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256, 1)
png('adam7_gray16.png', ramp, 16, 0, 1)
assert (np.asarray(Image.open(f'{d}/adam7_gray16.png')) == ramp[:, :, 0]).all()
ref('adam7_gray16.png', scale16(ramp))
for name, channels, color_type, interlace in [('rgb16.png', 3, 2, 0), ('adam7_rgba16.png', 4, 6, 1)]:
    a = rng.integers(0, 65536, (13, 11, channels), dtype=np.uint16)
    png(name, a, 16, color_type, interlace)
    assert (np.asarray(Image.open(f'{d}/{name}')) == a >> 8).all()
    ref(name, scale16(a))

# JPEG written and decoded by PIL: 4:2:0, 4:4:4, gray, progressive, all of odd size; CMYK (refused).
smooth = np.clip(np.add.outer(np.arange(31) * 4, np.arange(45) * 3)[:, :, None] + noise(31, 45, 3) // 4, 0, 255)
for name, mode, options in [('q90.jpg', 'RGB', {'quality': 90}), ('s444.jpg', 'RGB', {'subsampling': 0}),
                            ('gray.jpg', 'L', {}), ('progressive.jpg', 'RGB', {'progressive': True, 'quality': 80})]:
    a = smooth.astype(np.uint8) if mode == 'RGB' else smooth[:, :, 1].astype(np.uint8)
    Image.fromarray(a, mode).save(f'{d}/{name}', **options)
    pil(name)
Image.fromarray(noise(8, 8, 4), 'CMYK').save(f'{d}/cmyk.jpg')

# BMP written by PIL: 24-bit (rows padded), 8-bit gray and colour palette, 1-bit, 32-bit (which PIL reads as RGB).
Image.fromarray(noise(23, 37, 3)).save(f'{d}/rgb.bmp')
pil('rgb.bmp')
Image.fromarray(noise(23, 37)).save(f'{d}/gray.bmp')
pil('gray.bmp', 'RGB')
im = Image.frombytes('P', (37, 23), noise(23, 37).tobytes())
im.putpalette(noise(768).tobytes())
im.save(f'{d}/pal.bmp')
pil('pal.bmp', 'RGB')
Image.fromarray(noise(19, 29) > 127).save(f'{d}/bw.bmp')
pil('bw.bmp', 'RGB')
Image.fromarray(noise(23, 37, 4)).save(f'{d}/rgba.bmp')
assert Image.open(f'{d}/rgba.bmp').mode == 'RGB'
pil('rgba.bmp')

# BMP written here: top-down 24-bit, bottom-up 4-bit palette, top-down V5 32-bit with an alpha bit field.
a = noise(9, 13, 3)
bmp('topdown.bmp', 13, -9, 24, [row[:, ::-1].tobytes() for row in a])
pil('topdown.bmp')
idx = rng.integers(0, 16, (9, 13), dtype=np.uint8)
packed = [bytes((r[k] << 4) | (r[k + 1] if k + 1 < len(r) else 0) for k in range(0, len(r), 2)) for r in idx[::-1]]
bmp('pal4.bmp', 13, 9, 4, packed, palette=noise(16 * 4).tobytes())
pil('pal4.bmp', 'RGB')
a = noise(9, 13, 4)
bmp('v5_alpha.bmp', 13, -9, 32, [row[:, [2, 1, 0, 3]].tobytes() for row in a], masks=(0xff0000, 0xff00, 0xff, 0xff000000))
assert Image.open(f'{d}/v5_alpha.bmp').mode == 'RGBA'
pil('v5_alpha.bmp')

# PIL's convert('L') and convert('RGB') of decoded images, for to_gray and to_rgb.
for f in ['L.png', 'LA.png', 'RGB.png', 'RGBA.png', 'pal8.png']:
    im = Image.open(f'{d}/{f}')
    np.asarray(im.convert('L')).tofile(f'{d}/{f}.L.bin')
    np.asarray(im.convert('RGB')).tofile(f'{d}/{f}.RGB.bin')
print('ok')
)py";

bool have_pil() { return test::run_command(std::string(kPython) + " -c 'import PIL, numpy' 2>/dev/null", nullptr) == 0; }

std::vector<std::uint8_t> as_bytes(const std::string& s) { return {s.begin(), s.end()}; }

/// The folder of reference images, made once per test process; empty when PIL is missing.
const std::string& reference_dir(std::string* why) {
  static test::TempDir dir;
  static std::string made, failure;
  static bool tried = false;
  if (!tried) {
    tried = true;
    std::string out;
    if (!have_pil())
      failure = "python3-pil or python3-numpy is not installed (the independent reference)";
    else if (test::run_command(std::string(kPython) + " " + dir.write("make.py", kMakeImages) + " " + dir.path() + " 2>&1",
                               &out) != 0)
      failure = "the reference script failed: " + out;
    else
      made = dir.path();
  }
  *why = failure;
  return made;
}

/// The pixels of `file` in the reference folder must equal what the script stored for it.
void expect_reference_pixels(const std::string& dir, const std::string& file) {
  SCOPED_TRACE(file);
  std::ifstream shape(dir + "/" + file + ".txt");
  int w = 0, h = 0, c = 0;
  ASSERT_TRUE(static_cast<bool>(shape >> w >> h >> c)) << "no reference for " << file;
  const Image img = read_image(dir + "/" + file);
  ASSERT_EQ(img.width, w);
  ASSERT_EQ(img.height, h);
  ASSERT_EQ(img.channels, c);
  const auto want = as_bytes(test::read_file(dir + "/" + file + ".bin"));
  ASSERT_EQ(img.pixels.size(), want.size());
  std::size_t wrong = 0, first = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    if (img.pixels[i] != want[i] && wrong++ == 0) first = i;
  EXPECT_EQ(wrong, 0u) << "first difference at byte " << first << ": " << int(img.pixels[first]) << " vs PIL's "
                       << int(want[first]);
}

/// read_image's error for `path` (which must be a std::runtime_error), or "" when it decoded.
std::string read_error(const std::string& path) {
  try {
    read_image(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

void expect_refused(const std::string& path, const std::string& fragment) {
  const std::string message = read_error(path);
  EXPECT_EQ(message.rfind("'" + path + "': ", 0), 0u) << "message does not start with the path: " << message;
  EXPECT_NE(message.find(fragment), std::string::npos) << "no '" << fragment << "' in: " << message;
}

Image noise_image(int w, int h, int channels, unsigned seed) {
  std::mt19937 rng(seed);
  Image img;
  img.width = w, img.height = h, img.channels = channels;
  img.pixels.resize(static_cast<std::size_t>(w) * h * channels);
  for (auto& p : img.pixels) p = static_cast<std::uint8_t>(rng());
  return img;
}

void put16(std::string& s, unsigned v) { s += {static_cast<char>(v), static_cast<char>(v >> 8)}; }
void put32(std::string& s, std::uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}
void put32be(std::string& s, std::uint32_t v) {
  for (int k = 3; k >= 0; --k) s += static_cast<char>(v >> (8 * k));
}

/// The 54 header bytes of an uncompressed 24-bit BMP of `w` x `h` (negative: top-down), as the format defines them.
std::string bmp24_header(std::int32_t w, std::int32_t h) {
  const std::uint64_t rows = h < 0 ? -std::int64_t{h} : h,
                      bytes = (std::uint64_t{static_cast<std::uint32_t>(w)} * 3 + 3) / 4 * 4 * rows;
  std::string s = "BM";
  for (std::uint32_t v :
       {static_cast<std::uint32_t>(54 + bytes), 0u, 54u, 40u, static_cast<std::uint32_t>(w), static_cast<std::uint32_t>(h)})
    put32(s, v);
  put16(s, 1);   // planes
  put16(s, 24);  // bits per pixel
  for (std::uint32_t v : {0u, static_cast<std::uint32_t>(bytes), 2835u, 2835u, 0u, 0u}) put32(s, v);
  return s;
}

/// A whole 24-bit BMP of random pixels.
std::string bmp24(std::int32_t w, std::int32_t h, unsigned seed) {
  std::string s = bmp24_header(w, h);
  const std::size_t bytes = (static_cast<std::size_t>(w) * 3 + 3) / 4 * 4 * static_cast<std::size_t>(h < 0 ? -h : h);
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < bytes; ++i) s += static_cast<char>(rng());
  return s;
}

std::string png_chunk(const std::string& type, const std::string& data) {
  std::string s;
  put32be(s, static_cast<std::uint32_t>(data.size()));
  s += type + data;
  const std::string covered = type + data;
  put32be(
      s, static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(covered.data()), static_cast<uInt>(covered.size()))));
  return s;
}

/// A valid PNG (correct CRCs) whose header declares `w` x `h` 8-bit gray pixels
/// but whose data holds only a few rows.
std::string png_declaring(std::uint32_t w, std::uint32_t h) {
  std::string ihdr;
  put32be(ihdr, w);
  put32be(ihdr, h);
  ihdr += std::string("\x08\x00\x00\x00\x00", 5);
  const std::string rows(64, '\0');
  uLongf n = compressBound(rows.size());
  std::string idat(n, '\0');
  compress2(reinterpret_cast<Bytef*>(&idat[0]), &n, reinterpret_cast<const Bytef*>(rows.data()), rows.size(), 9);
  idat.resize(n);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", idat) + png_chunk("IEND", "");
}

}  // namespace

// PNGs from PIL (gray, gray+alpha, RGB, RGBA, 1-bit, 8/4-bit palette, palette + tRNS) and an Adam7 file give PIL's pixels.
TEST(ImageIo, PngMatchesPil) {
  std::string why;
  const std::string dir = reference_dir(&why);
  if (dir.empty()) GTEST_SKIP() << why;
  for (const char* f :
       {"L.png", "LA.png", "RGB.png", "RGBA.png", "bw.png", "pal8.png", "pal4.png", "pal_trns.png", "adam7_rgb.png"})
    expect_reference_pixels(dir, f);
}

// 16-bit PNGs (gray by PIL; every gray value, RGB and RGBA, Adam7 or not) round each sample to round(v * 255 / 65535).
TEST(ImageIo, SixteenBitPngRoundsToEightBits) {
  std::string why;
  const std::string dir = reference_dir(&why);
  if (dir.empty()) GTEST_SKIP() << why;
  for (const char* f : {"gray16.png", "adam7_gray16.png", "rgb16.png", "adam7_rgba16.png"}) expect_reference_pixels(dir, f);
}

// JPEGs from PIL (4:2:0, 4:4:4, gray, progressive; odd sizes) decode to exactly PIL's pixels, and CMYK is refused.
TEST(ImageIo, JpegMatchesPilExactly) {
  // No tolerance: PIL (python3-pil links libjpeg62-turbo) runs the same library with the same defaults (ISLOW DCT, fancy
  // upsampling) as read_image.
  std::string why;
  const std::string dir = reference_dir(&why);
  if (dir.empty()) GTEST_SKIP() << why;
  for (const char* f : {"q90.jpg", "s444.jpg", "gray.jpg", "progressive.jpg"}) expect_reference_pixels(dir, f);
  expect_refused(dir + "/cmyk.jpg", "CMYK JPEG is not supported");
}

// BMPs from PIL (24, 8, 1, 32 bits) and from here (top-down, 4-bit, V5 bit fields with alpha) give PIL's pixels, palettes as RGB.
TEST(ImageIo, BmpMatchesPil) {
  std::string why;
  const std::string dir = reference_dir(&why);
  if (dir.empty()) GTEST_SKIP() << why;
  for (const char* f : {"rgb.bmp", "gray.bmp", "pal.bmp", "bw.bmp", "rgba.bmp", "topdown.bmp", "pal4.bmp", "v5_alpha.bmp"})
    expect_reference_pixels(dir, f);
}

// The format comes from the first bytes: a PNG named .jpg and a JPEG named .bmp decode as what they are.
TEST(ImageIo, FormatComesFromContentNotExtension) {
  std::string why;
  const std::string dir = reference_dir(&why);
  if (dir.empty()) GTEST_SKIP() << why;
  test::TempDir tmp;
  test::write_file(tmp.path() + "/png.jpg", test::read_file(dir + "/RGB.png"));
  test::write_file(tmp.path() + "/jpeg.bmp", test::read_file(dir + "/q90.jpg"));
  EXPECT_EQ(read_image(tmp.path() + "/png.jpg").pixels, read_image(dir + "/RGB.png").pixels);
  EXPECT_EQ(read_image(tmp.path() + "/jpeg.bmp").pixels, read_image(dir + "/q90.jpg").pixels);
}

// write_png's files (1 to 4 channels) read back as the same pixels in PIL and read_image, replace the old file, leave no
// .tmp, and hold exactly encode_png's bytes.
TEST(ImageIo, WritePngRoundTripsThroughPil) {
  if (!have_pil()) GTEST_SKIP() << "python3-pil or python3-numpy is not installed (the independent reference)";
  test::TempDir dir;
  const char* const modes[] = {"L", "LA", "RGB", "RGBA"};
  for (int c = 1; c <= 4; ++c) {
    const Image img = noise_image(31 + c, 17, c, static_cast<unsigned>(c));
    const std::string path = dir.path() + "/" + modes[c - 1] + ".png";
    test::write_file(path, "an older file");
    write_png(path, img);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    const std::vector<std::uint8_t> encoded = encode_png(img);
    EXPECT_EQ(test::read_file(path), std::string(encoded.begin(), encoded.end())) << "encode_png differs from write_png's file";
    test::write_file(path + ".bin", std::string(img.pixels.begin(), img.pixels.end()));
    const Image back = read_image(path);
    EXPECT_EQ(back.width, img.width);
    EXPECT_EQ(back.height, img.height);
    EXPECT_EQ(back.channels, c);
    EXPECT_EQ(back.pixels, img.pixels);
  }
  const std::string script = dir.write("check.py", R"py(import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
for mode, channels in [('L', 1), ('LA', 2), ('RGB', 3), ('RGBA', 4)]:
    im = Image.open(f'{d}/{mode}.png')
    a = np.asarray(im)
    want = np.fromfile(f'{d}/{mode}.png.bin', np.uint8).reshape(17, 31 + channels, channels)
    assert im.mode == mode, (mode, im.mode)
    assert (a.reshape(want.shape) == want).all(), mode
print('ok')
)py");
  std::string out;
  ASSERT_EQ(test::run_command(std::string(kPython) + " " + script + " " + dir.path() + " 2>&1", &out), 0) << out;
  EXPECT_EQ(out, "ok\n");
}

// write_png refuses malformed images (invalid_argument) and names the path when it cannot write (runtime_error).
TEST(ImageIo, WritePngRefusesBadImagesAndPaths) {
  test::TempDir dir;
  Image bad = noise_image(4, 3, 3, 1);
  bad.channels = 5;
  EXPECT_THROW(write_png(dir.path() + "/a.png", bad), std::invalid_argument);
  bad.channels = 3;
  bad.pixels.pop_back();
  EXPECT_THROW(write_png(dir.path() + "/a.png", bad), std::invalid_argument);
  EXPECT_THROW(write_png(dir.path() + "/a.png", Image{}), std::invalid_argument);
  const std::string nowhere = dir.path() + "/no/such/folder/a.png";
  try {
    write_png(nowhere, noise_image(4, 3, 3, 1));
    ADD_FAILURE() << "wrote into a missing folder";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("'" + nowhere + "': ", 0), 0u) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/a.png"));
}

// PIL writes maps of numbers; read_plane gives np.asarray(Image.open(f)) of each: 16-bit gray (every bit), 8-bit
// gray, 8-bit and 4-bit palette indices, an 8-bit gray BMP and a gray JPEG; colour and alpha are refused naming the file.
TEST(ImageIo, ReadPlaneKeepsStoredValuesAsPil) {
  if (!have_pil()) GTEST_SKIP() << "python3-pil or python3-numpy is not installed (the independent reference)";
  test::TempDir dir;
  const std::string script = dir.write("make.py", R"py(import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(5)
def keep(name, im, **kw):
    im.save(f'{d}/{name}', **kw)
    a = np.asarray(Image.open(f'{d}/{name}')).astype(np.uint16)
    a.tofile(f'{d}/{name}.bin')
    open(f'{d}/{name}.txt', 'w').write(f'{a.shape[1]} {a.shape[0]}')
depth = rng.integers(0, 65536, (13, 21)).astype(np.uint16)
depth[0, :4] = [0, 255, 256, 65535]
keep('depth16.png', Image.fromarray(depth))
keep('gray8.png', Image.fromarray(rng.integers(0, 256, (9, 11)).astype(np.uint8)))
labels = rng.integers(0, 38, (10, 12)).astype(np.uint8)
pal = Image.fromarray(labels, 'L').convert('P')
pal.putdata(labels.flatten().tolist())
pal.putpalette([(i * 37) % 256 for i in range(768)])
keep('pal8.png', pal)
small = Image.fromarray(rng.integers(0, 16, (7, 9)).astype(np.uint8), 'L').convert('P')
small.putdata(rng.integers(0, 16, 63).tolist())
small.putpalette([(i * 11) % 256 for i in range(48)])
keep('pal4.png', small, bits=4)
keep('gray8.bmp', Image.fromarray(rng.integers(0, 256, (6, 10)).astype(np.uint8)))
keep('gray.jpg', Image.fromarray(rng.integers(0, 256, (8, 8)).astype(np.uint8)))
Image.fromarray(rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)).save(f'{d}/rgb.png')
Image.fromarray(rng.integers(0, 256, (4, 4, 2)).astype(np.uint8), 'LA').save(f'{d}/la.png')
Image.fromarray(rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)).save(f'{d}/rgb.bmp')
print(Image.open(f'{d}/pal4.png').info.get('bits', 'png'))
)py");
  std::string out;
  ASSERT_EQ(test::run_command(std::string(kPython) + " " + script + " " + dir.path() + " 2>&1", &out), 0) << out;
  for (const char* name : {"depth16.png", "gray8.png", "pal8.png", "pal4.png", "gray8.bmp", "gray.jpg"}) {
    SCOPED_TRACE(name);
    const std::string path = dir.path() + "/" + name;
    std::ifstream shape(path + ".txt");
    int w = 0, h = 0;
    ASSERT_TRUE(static_cast<bool>(shape >> w >> h));
    const Plane plane = read_plane(path);
    ASSERT_EQ(plane.width, w);
    ASSERT_EQ(plane.height, h);
    const std::string raw = test::read_file(path + ".bin");
    std::vector<std::uint16_t> want(raw.size() / 2);
    std::memcpy(want.data(), raw.data(), raw.size());
    EXPECT_EQ(plane.values, want);
  }
  EXPECT_EQ(read_plane(dir.path() + "/depth16.png").bits, 16);
  EXPECT_EQ(read_plane(dir.path() + "/depth16.png").at(3, 0), 65535);
  EXPECT_EQ(read_plane(dir.path() + "/pal4.png").bits, 4);
  for (const char* name : {"rgb.png", "la.png", "rgb.bmp"}) {
    const std::string path = dir.path() + "/" + name;
    try {
      read_plane(path);
      ADD_FAILURE() << name << " was read as a map";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("'" + path + "': ", 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).find("lost its class numbers"), std::string::npos) << e.what();
    }
  }
}

// write_png of a plane (16-bit gray, 8-bit gray, palette indices) reads back in PIL and read_plane as the values written;
// values that do not fit, or a palette on 16 bits, are refused.
TEST(ImageIo, WritePlaneRoundTripsThroughPil) {
  if (!have_pil()) GTEST_SKIP() << "python3-pil or python3-numpy is not installed (the independent reference)";
  test::TempDir dir;
  std::mt19937 rng(8);
  auto plane = [&](int bits, std::uint32_t below) {
    Plane p;
    p.width = 23, p.height = 11, p.bits = bits;
    for (int i = 0; i < p.width * p.height; ++i) p.values.push_back(static_cast<std::uint16_t>(rng() % below));
    return p;
  };
  const Plane d16 = plane(16, 65536), g8 = plane(8, 256), pal = plane(8, 38);
  std::vector<std::array<std::uint8_t, 3>> colours;
  for (int i = 0; i < 38; ++i) colours.push_back({static_cast<std::uint8_t>(i * 5), static_cast<std::uint8_t>(255 - i), 7});
  write_png(dir.path() + "/d16.png", d16);
  write_png(dir.path() + "/g8.png", g8);
  write_png(dir.path() + "/pal.png", pal, colours);
  for (const auto& [name, p] : {std::pair<const char*, const Plane*>{"d16", &d16}, {"g8", &g8}, {"pal", &pal}}) {
    EXPECT_EQ(read_plane(dir.path() + "/" + name + ".png").values, p->values) << name;
    test::write_file(dir.path() + "/" + name + ".bin",
                     std::string(reinterpret_cast<const char*>(p->values.data()), p->values.size() * 2));
  }
  const std::string script = dir.write("check.py", R"py(import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
for name, mode in [('d16', ('I', 'I;16')), ('g8', ('L',)), ('pal', ('P',))]:
    im = Image.open(f'{d}/{name}.png')
    want = np.fromfile(f'{d}/{name}.bin', np.uint16).reshape(11, 23)
    assert im.mode in mode, (name, im.mode)
    assert (np.asarray(im).astype(np.uint16) == want).all(), name
pal = Image.open(f'{d}/pal.png').getpalette()
assert pal[3 * 37: 3 * 37 + 3] == [185, 218, 7], pal[3 * 37: 3 * 37 + 3]
print('ok')
)py");
  std::string out;
  ASSERT_EQ(test::run_command(std::string(kPython) + " " + script + " " + dir.path() + " 2>&1", &out), 0) << out;
  EXPECT_EQ(out, "ok\n");
  Plane over = g8;
  over.values[5] = 256;
  EXPECT_THROW(write_png(dir.path() + "/x.png", over), std::invalid_argument);
  Plane out_of_palette = pal;
  out_of_palette.values[0] = 38;
  EXPECT_THROW(write_png(dir.path() + "/x.png", out_of_palette, colours), std::invalid_argument);
  EXPECT_THROW(write_png(dir.path() + "/x.png", d16, colours), std::invalid_argument);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/x.png"));
}

// to_gray equals PIL's convert('L') (and to_rgb its convert('RGB')) on gray, gray+alpha, RGB, RGBA and palette images.
TEST(ImageIo, ToGrayAndToRgbMatchPil) {
  std::string why;
  const std::string dir = reference_dir(&why);
  if (dir.empty()) GTEST_SKIP() << why;
  for (const char* f : {"L.png", "LA.png", "RGB.png", "RGBA.png", "pal8.png"}) {
    SCOPED_TRACE(f);
    const Image img = read_image(dir + "/" + f);
    const Image gray = to_gray(img), rgb = to_rgb(img);
    EXPECT_EQ(gray.channels, 1);
    EXPECT_EQ(rgb.channels, 3);
    EXPECT_EQ(gray.pixels, as_bytes(test::read_file(dir + "/" + f + ".L.bin")));
    EXPECT_EQ(rgb.pixels, as_bytes(test::read_file(dir + "/" + f + ".RGB.bin")));
  }
}

// A gray value replicated into R, G and B is its own luma (the weights sum to 65536), and to_rgb replicates gray.
TEST(ImageIo, GrayIsItsOwnLuma) {
  Image rgb, gray;
  rgb.width = gray.width = 256;
  rgb.height = gray.height = 1;
  rgb.channels = 3;
  gray.channels = 1;
  for (int v = 0; v < 256; ++v) {
    rgb.pixels.insert(rgb.pixels.end(), 3, static_cast<std::uint8_t>(v));
    gray.pixels.push_back(static_cast<std::uint8_t>(v));
  }
  EXPECT_EQ(to_gray(rgb).pixels, gray.pixels);
  EXPECT_EQ(to_rgb(gray).pixels, rgb.pixels);
  Image bad = gray;
  bad.channels = 0;
  EXPECT_THROW(to_gray(bad), std::invalid_argument);
  EXPECT_THROW(to_rgb(bad), std::invalid_argument);
}

// Missing, empty, folder and non-image inputs (a text file named .png) throw errors that start with the path.
TEST(ImageIo, BadFilesThrowNamingThePath) {
  test::TempDir dir;
  expect_refused(dir.path() + "/missing.png", "no such file");
  expect_refused(dir.write("empty.png", ""), "empty file");
  expect_refused(dir.path(), "is a folder");
  expect_refused(dir.write("text.png", "hello, this is not an image\n"), "not a PNG, JPEG or BMP image");
  expect_refused(dir.write("short.bmp", "B"), "not a PNG, JPEG or BMP image");
}

// Files cut anywhere (inside the signature, the header, the pixel data, before the end marker) are refused as truncated.
TEST(ImageIo, TruncatedFilesAreRefused) {
  test::TempDir dir;
  const std::string png_path = dir.path() + "/whole.png";
  write_png(png_path, noise_image(64, 48, 3, 5));
  std::vector<std::pair<std::string, std::vector<std::size_t>>> cases;
  const std::string png = test::read_file(png_path), bmp = bmp24(37, 23, 3);
  test::write_file(dir.path() + "/whole.bmp", bmp);
  ASSERT_NO_THROW(read_image(dir.path() + "/whole.bmp"));
  cases.push_back({png, {4, 20, 40, png.size() / 2, png.size() - 1}});
  cases.push_back({bmp, {10, 30, 54, bmp.size() / 2, bmp.size() - 1}});
  std::string why;
  const std::string ref = reference_dir(&why);
  if (!ref.empty()) {
    const std::string jpeg = test::read_file(ref + "/q90.jpg"), progressive = test::read_file(ref + "/progressive.jpg");
    cases.push_back({jpeg, {2, 100, jpeg.size() / 2, jpeg.size() - 2}});
    cases.push_back({progressive, {progressive.size() / 2, progressive.size() - 2}});
  }
  int n = 0;
  for (const auto& [bytes, cuts] : cases)
    for (std::size_t cut : cuts) {
      const std::string path = dir.path() + "/cut" + std::to_string(n++) + ".img";
      test::write_file(path, bytes.substr(0, cut));
      SCOPED_TRACE(std::to_string(cut) + " of " + std::to_string(bytes.size()) + " bytes");
      expect_refused(path, "truncated");
    }
  if (ref.empty()) GTEST_SKIP() << "JPEG cases skipped: " << why;
}

// Headers declaring over 2^28 pixels (PNG, JPEG, BMP), or more than the file's bytes can hold (PNG), are refused up front.
TEST(ImageIo, HugeDeclaredSizesAreRefused) {
  test::TempDir dir;
  test::write_file(dir.path() + "/huge.png", png_declaring(100000, 100000));
  expect_refused(dir.path() + "/huge.png", "100000x100000 pixels, more than the 268435456");
  test::write_file(dir.path() + "/big.png", png_declaring(16000, 16000));
  expect_refused(dir.path() + "/big.png", "cannot hold the 16000x16000 pixels");
  test::write_file(dir.path() + "/huge.bmp", bmp24_header(100000, -100000) + std::string(100, '\0'));
  expect_refused(dir.path() + "/huge.bmp", "100000x100000 pixels");
  std::string why;
  const std::string ref = reference_dir(&why);
  if (ref.empty()) GTEST_SKIP() << "JPEG case skipped: " << why;
  std::string jpeg = test::read_file(ref + "/q90.jpg");
  const std::size_t sof = jpeg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  for (std::size_t at : {sof + 5, sof + 7}) {  // SOF0: FF C0, length (2), precision (1), height (2), width (2)
    jpeg[at] = static_cast<char>(60000 >> 8);
    jpeg[at + 1] = static_cast<char>(60000 & 0xff);
  }
  test::write_file(dir.path() + "/huge.jpg", jpeg);
  expect_refused(dir.path() + "/huge.jpg", "60000x60000 pixels");
}

// One damaged byte anywhere in a PNG (8 or 16 bits), JPEG or BMP gives an image (read_image) or a plane (read_plane) or a
// runtime_error naming the file, never a crash.
TEST(ImageIo, DamagedFilesNeverCrash) {
  test::TempDir dir;
  write_png(dir.path() + "/a.png", noise_image(24, 16, 4, 9));
  Plane depth;
  depth.width = 19, depth.height = 7, depth.bits = 16;
  for (int i = 0; i < 19 * 7; ++i) depth.values.push_back(static_cast<std::uint16_t>(i * 487));
  write_png(dir.path() + "/d.png", depth);
  std::vector<std::string> originals = {test::read_file(dir.path() + "/a.png"), bmp24(21, -13, 4), test::read_file(dir.path() + "/d.png")};
  std::string why;
  const std::string ref = reference_dir(&why);
  if (!ref.empty())
    for (const char* f : {"q90.jpg", "progressive.jpg", "pal4.bmp", "v5_alpha.bmp", "adam7_rgb.png"})
      originals.push_back(test::read_file(ref + "/" + f));
  std::mt19937 rng(11);
  const std::string path = dir.path() + "/damaged";
  int decoded = 0, refused = 0;
  for (const std::string& original : originals)
    for (int trial = 0; trial < 150; ++trial) {
      std::string bytes = original;
      bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
      test::write_file(path, bytes);
      try {
        const Image img = read_image(path);
        EXPECT_EQ(img.pixels.size(), static_cast<std::size_t>(img.width) * img.height * img.channels);
        ++decoded;
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("'" + path + "': ", 0), 0u) << e.what();
        ++refused;
      }
      try {
        const Plane plane = read_plane(path);
        EXPECT_EQ(plane.values.size(), static_cast<std::size_t>(plane.width) * plane.height);
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("'" + path + "': ", 0), 0u) << e.what();
      }
    }
  EXPECT_GT(refused, 0);
  EXPECT_GT(decoded, 0);
}

}  // namespace umrflow::image2d
