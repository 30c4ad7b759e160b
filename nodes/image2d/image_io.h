// image_io.h: reading and writing the 2D images of the SOD and SUN-RGBD data
// sets (PNG, JPEG, BMP) as 8-bit pixels, without torch.
//
// Decoding follows what PIL gives (np.asarray(Image.open(p)), or .convert()
// where PIL keeps a palette), which is how the reference Python code of the
// 2D tasks loads its data (../shared/reference/unimrseg.md, section 3):
//  - PNG (libpng): gray, gray+alpha, RGB and RGBA keep their channels; 1-, 2-
//    and 4-bit gray is scaled to 0..255 (1 -> 255); a palette expands to RGB,
//    or to RGBA when a tRNS chunk gives transparency (gray or RGB with tRNS
//    gain an alpha channel the same way); interlaced files are deinterlaced.
//    16-bit samples are rounded to 8 bits, round(v * 255 / 65535), which is
//    libpng's png_set_scale_16. PIL differs here and is not followed: PIL 9
//    keeps 16-bit gray as 32-bit integers (mode I; its convert('L') clips at
//    255) and truncates 16-bit colour to the high byte (at most 1 below ours).
//    16-bit depth maps (SUN-RGBD) therefore keep 8 of their 16 bits here.
//    No gamma or colour-profile correction is applied (PIL applies none).
//  - JPEG (libjpeg-turbo, its default ISLOW DCT and fancy upsampling, as PIL):
//    gray stays 1 channel, YCbCr and RGB become RGB. CMYK/YCCK is refused.
//    Corrupt-data warnings are tolerated as PIL does; a file that ends before
//    its end marker is refused as truncated (PIL: "image file is truncated").
//  - BMP (this file's own parser): BITMAPINFOHEADER and its V2-V5 extensions,
//    bottom-up or top-down, uncompressed 1-, 4- and 8-bit palette (expanded to
//    RGB), 24-bit BGR, and 32-bit: BI_RGB as RGB (the fourth byte ignored, as
//    PIL does), BI_BITFIELDS with byte-aligned masks as RGB, or RGBA when an
//    alpha mask is set. RLE, 16-bit and the old OS/2 header are refused.
// read_image always expands palettes to colours and rounds 16-bit samples to
// 8 bits; read_plane (below) keeps a map's stored numbers instead: palette
// indices (class = index, as np.asarray of PIL's mode P gives) and all 16
// bits of a depth map.
//
// The format is recognised by the file's first bytes, never by its extension.
//
// Errors: every failure is a std::runtime_error whose message starts with the
// quoted path, says what is wrong and what to do, e.g.
//   'x.png': truncated PNG: the file ends after 812 bytes (re-copy or re-export the image)
// Hostile input is bounded: a file over 2 GiB, or an image declaring more than
// kMaxPixels pixels, is refused before its pixels are allocated; sizes are
// checked against the file's length; the libraries' errors return through
// setjmp/longjmp into frames without destructors: no input calls exit(),
// aborts, or reads out of bounds. The whole file is read into memory first.
// All functions are thread-safe (no shared state).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace umrflow::image2d {

/// An 8-bit image: `height` rows of `width` pixels of `channels` interleaved
/// samples (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA), rows top to bottom.
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<std::uint8_t> pixels;  // row-major, interleaved, width * height * channels bytes

  std::uint8_t at(int x, int y, int c) const { return pixels[(static_cast<std::size_t>(y) * width + x) * channels + c]; }
};

/// The largest image read_image accepts, in pixels (2^28: 16384 x 16384).
constexpr std::uint64_t kMaxPixels = std::uint64_t{1} << 28;

/// Decodes a PNG, JPEG or BMP file (see the top of this file for what each
/// gives). Throws std::runtime_error naming the file for a missing, empty,
/// truncated, corrupt, oversized or unsupported file.
Image read_image(const std::string& path);

/// Writes `img` as an 8-bit PNG (gray, gray+alpha, RGB or RGBA by its channel
/// count), to `path` + ".tmp" first and then renamed over `path`, so a reader
/// never sees half a file. Throws std::invalid_argument for an image whose
/// size does not match its pixels or whose channels are not 1..4, and
/// std::runtime_error naming the path when the file cannot be written.
void write_png(const std::string& path, const Image& img);

/// A one-channel map whose samples keep their stored integer values: a
/// 16-bit depth map with all 16 bits, a label map's class numbers.
struct Plane {
  int width = 0, height = 0;
  int bits = 8;                        ///< the stored sample depth: 1, 2, 4, 8 or 16
  std::vector<std::uint16_t> values;   ///< row-major, width * height samples
  std::uint16_t at(int x, int y) const { return values[static_cast<std::size_t>(y) * width + x]; }
};

/// Reads a map whose values are numbers, not colours (SUN-RGBD's depth and
/// label images), as np.asarray(PIL.Image.open(path)) gives them:
///  - PNG gray of 8 or 16 bits: the stored values (16-bit depth keeps all 16
///    bits, unlike read_image); gray of 1, 2 or 4 bits: the stored values
///    0 .. 2^bits - 1 (PIL gives 0/1 for 1 bit and scales 2 and 4 bits; such
///    label maps are not known to exist);
///  - PNG palette: the palette indices (PIL's mode P), colours ignored;
///  - a gray JPEG, or a BMP whose colours are all gray (R = G = B): the gray
///    value (a BMP's palette is expanded first, so a non-gray palette is
///    refused as colour and its indices are not returned).
/// Anything with colour or alpha channels is refused with the reason: a label
/// map saved as colours has lost its class numbers. Throws std::runtime_error
/// naming the file (the errors of read_image for broken files).
Plane read_plane(const std::string& path);

/// Writes `plane` as a gray PNG of 8 or 16 bits (its `bits`; values must fit),
/// or, with a `palette` of at most 256 RGB colours and 8 bits, as a palette
/// PNG whose indices are the values. Atomically, as write_png. Throws
/// std::invalid_argument for a malformed plane, a value that does not fit or
/// an index without a palette entry, std::runtime_error naming the path when
/// the file cannot be written.
void write_png(const std::string& path, const Plane& plane, const std::vector<std::array<std::uint8_t, 3>>& palette = {});

/// The PNG file write_png would write for `img`, as bytes in memory (for
/// nodes that collect outputs and write them at the end). Throws
/// std::invalid_argument for a malformed image, std::runtime_error when the
/// encoder fails (out of memory).
std::vector<std::uint8_t> encode_png(const Image& img);

/// Luma as PIL's convert('L') computes it (ITU-R 601-2 weights in 16-bit
/// fixed point, rounded): L = (19595 R + 38470 G + 7471 B + 32768) >> 16.
/// Gray stays as it is (a gray value replicated into R, G, B gives itself
/// back); alpha is dropped. Throws std::invalid_argument for a malformed image.
Image to_gray(const Image& img);

/// Three channels: gray replicated into R, G and B, alpha dropped, RGB copied.
/// Throws std::invalid_argument for a malformed image.
Image to_rgb(const Image& img);

}  // namespace umrflow::image2d
