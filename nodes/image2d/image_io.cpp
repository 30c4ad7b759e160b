#include "image2d/image_io.h"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

// jpeglib.h needs FILE and size_t declared first (cstdio above).
#include <jpeglib.h>
// The message codes (JWRN_JPEG_EOF), after jpeglib.h.
#include <jerror.h>

// libpng and libjpeg report errors through callbacks that must not return.
// They longjmp back to a setjmp in a function whose frame holds only trivial
// objects (no destructor is skipped); that function returns false, and the
// C++ caller throws. Everything that allocates in C++ happens between those
// calls, never inside them.

namespace umrflow::image2d {

namespace {

using Bytes = std::vector<std::uint8_t>;
constexpr std::size_t kMessageSize = 256;
constexpr std::streamoff kMaxFileBytes = std::streamoff{1} << 31;  // above kMaxPixels as 32-bit BMP (1 GiB)

[[noreturn]] void fail(const std::string& path, const std::string& why) { throw std::runtime_error("'" + path + "': " + why); }

std::string dims(std::uint64_t w, std::uint64_t h) { return std::to_string(w) + "x" + std::to_string(h); }

Bytes read_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(path, "no such file (check the path)");
  if (std::filesystem::is_directory(path, ec)) fail(path, "is a folder, not an image file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const std::streamoff size = in ? static_cast<std::streamoff>(in.tellg()) : -1;
  if (size < 0) fail(path, "cannot open the file (check its permissions)");
  if (size > kMaxFileBytes) fail(path, "file larger than 2 GiB, more than any image this reader accepts (downscale it)");
  Bytes data(static_cast<std::size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(data.data()), size)) fail(path, "cannot read the file (I/O error)");
  return data;
}

/// Refuses an empty or oversized image before anything is allocated for it.
void check_size(const std::string& path, const char* format, std::uint64_t w, std::uint64_t h) {
  if (w == 0 || h == 0)
    fail(path, std::string("corrupt ") + format + ": it declares a " + dims(w, h) + " image (re-export the image)");
  if (w * h > kMaxPixels)
    fail(path, std::string(format) + " declares " + dims(w, h) + " pixels, more than the " + std::to_string(kMaxPixels) +
                   " (2^28) this reader accepts (a corrupt header, or an image too large: downscale it)");
}

std::string truncated(const char* format, std::size_t bytes) {
  return std::string("truncated ") + format + ": the file ends after " + std::to_string(bytes) +
         " bytes (re-copy or re-export the image)";
}

// ---- PNG ---------------------------------------------------------------------------

struct PngInput {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0, pos = 0;
  bool truncated = false;
};

void png_on_error(png_structp png, png_const_charp message) {
  std::snprintf(static_cast<char*>(png_get_error_ptr(png)), kMessageSize, "%s", message);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // ancillary-chunk noise (sRGB profiles, CRCs of text)

void png_read_bytes(png_structp png, png_bytep out, size_t n) {
  auto* in = static_cast<PngInput*>(png_get_io_ptr(png));
  if (n > in->size - in->pos) {
    in->truncated = true;
    png_error(png, "the file ends early");
  }
  std::memcpy(out, in->data + in->pos, n);
  in->pos += n;
}

struct PngReadState {
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngInput input;
  char message[kMessageSize] = {};
  png_uint_32 width = 0, height = 0;
  int file_bits = 0, file_channels = 0, bits = 0, channels = 0;  // as stored, and after the transforms
  int color_type = 0;                                              // as stored
  std::size_t rowbytes = 0;
  ~PngReadState() { png_destroy_read_struct(&png, &info, nullptr); }
};

/// Reads the chunks up to the image data and sets the transforms to 8-bit
/// gray, gray+alpha, RGB or RGBA. libpng's row buffers are bounded by its
/// default limit of 1,000,000 pixels per row.
/// With `keep_values` (read_plane) a gray or palette image instead keeps its
/// stored values: one byte per sample below 16 bits (indices and gray as
/// stored, tRNS ignored), 16 bits in host order; `s.color_type` tells the
/// caller whether the file has colour.
bool png_header(PngReadState& s, bool keep_values = false) {
  if (setjmp(png_jmpbuf(s.png))) return false;
  png_set_read_fn(s.png, &s.input, png_read_bytes);
  png_read_info(s.png, s.info);
  s.width = png_get_image_width(s.png, s.info);
  s.height = png_get_image_height(s.png, s.info);
  s.file_bits = png_get_bit_depth(s.png, s.info);
  s.file_channels = png_get_channels(s.png, s.info);
  s.color_type = png_get_color_type(s.png, s.info);
  if (keep_values) {
    png_set_packing(s.png);  // 1, 2, 4 bits -> one byte each, values unscaled
    if (s.file_bits == 16) {
      const std::uint16_t probe = 1;
      if (*reinterpret_cast<const std::uint8_t*>(&probe) == 1) png_set_swap(s.png);  // PNG is big-endian
    }
  } else {
    png_set_expand(s.png);    // palette -> RGB, gray < 8 bits -> 8 bits, tRNS -> alpha
    png_set_scale_16(s.png);  // 16 bits -> round(v * 255 / 65535)
  }
  png_set_interlace_handling(s.png);
  png_read_update_info(s.png, s.info);
  s.bits = png_get_bit_depth(s.png, s.info);
  s.channels = png_get_channels(s.png, s.info);
  s.rowbytes = png_get_rowbytes(s.png, s.info);
  return true;
}

bool png_pixels(PngReadState& s, png_bytep* rows) {
  if (setjmp(png_jmpbuf(s.png))) return false;
  png_read_image(s.png, rows);
  png_read_end(s.png, nullptr);  // checks the last chunk's CRC and the IEND chunk
  return true;
}

[[noreturn]] void png_broken(const PngReadState& s, const std::string& path, const Bytes& data) {
  fail(path, s.input.truncated ? truncated("PNG", data.size()) : "corrupt PNG: " + std::string(s.message) + " (re-export the image)");
}

/// Starts decoding `data` (the file `path`) up to its pixels, refusing what
/// cannot be decoded within bounds; `s` then describes the rows to read.
void png_start(PngReadState& s, const std::string& path, const Bytes& data, bool keep_values) {
  s.input.data = data.data();
  s.input.size = data.size();
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s.message, png_on_error, png_on_warning);
  if (s.png) s.info = png_create_info_struct(s.png);
  if (!s.png || !s.info) fail(path, "out of memory starting the PNG decoder");
  if (!png_header(s, keep_values)) png_broken(s, path, data);
  check_size(path, "PNG", s.width, s.height);
  // Deflate expands at most about 1032:1: refuse a header the file cannot fill.
  const std::uint64_t stored = (std::uint64_t{s.width} * s.file_bits * s.file_channels + 7) / 8 + 1;
  if (stored * s.height / 1100 > data.size())
    fail(path, "truncated or corrupt PNG: its " + std::to_string(data.size()) + " bytes cannot hold the " +
                   dims(s.width, s.height) + " pixels its header declares (re-copy or re-export the image)");
}

Image read_png(const std::string& path, const Bytes& data) {
  PngReadState s;
  png_start(s, path, data, false);
  if (s.bits != 8 || s.channels < 1 || s.channels > 4 || s.rowbytes != std::size_t{s.width} * s.channels)
    fail(path, "unsupported PNG layout (" + std::to_string(s.file_bits) + "-bit, " + std::to_string(s.file_channels) +
                   " channels; re-save it as 8-bit RGB or gray)");
  Image img;
  img.width = static_cast<int>(s.width);
  img.height = static_cast<int>(s.height);
  img.channels = s.channels;
  img.pixels.resize(s.rowbytes * s.height);
  std::vector<png_bytep> rows(s.height);
  for (png_uint_32 y = 0; y < s.height; ++y) rows[y] = img.pixels.data() + s.rowbytes * y;
  if (!png_pixels(s, rows.data())) png_broken(s, path, data);
  return img;
}

Plane read_png_plane(const std::string& path, const Bytes& data) {
  PngReadState s;
  png_start(s, path, data, true);
  if (s.color_type != PNG_COLOR_TYPE_GRAY && s.color_type != PNG_COLOR_TYPE_PALETTE)
    fail(path, "a " + std::to_string(s.file_channels) + "-channel " + (s.color_type & PNG_COLOR_MASK_ALPHA ? "image with alpha" : "colour image") +
                   " where a map of numbers (gray or palette PNG) is expected: a label map saved as colours has lost its class numbers "
                   "(save the values as 8- or 16-bit gray, or as palette indices)");
  const std::size_t bytes = s.file_bits == 16 ? 2 : 1;
  if (s.channels != 1 || s.rowbytes != std::size_t{s.width} * bytes)
    fail(path, "unsupported PNG layout (" + std::to_string(s.file_bits) + "-bit, " + std::to_string(s.file_channels) + " channels)");
  std::vector<std::uint8_t> raw(s.rowbytes * s.height);
  std::vector<png_bytep> rows(s.height);
  for (png_uint_32 y = 0; y < s.height; ++y) rows[y] = raw.data() + s.rowbytes * y;
  if (!png_pixels(s, rows.data())) png_broken(s, path, data);
  Plane plane;
  plane.width = static_cast<int>(s.width);
  plane.height = static_cast<int>(s.height);
  plane.bits = s.file_bits;
  plane.values.resize(std::size_t{s.width} * s.height);
  if (bytes == 2)
    std::memcpy(plane.values.data(), raw.data(), raw.size());
  else
    std::copy(raw.begin(), raw.end(), plane.values.begin());
  return plane;
}

// ---- JPEG --------------------------------------------------------------------------

struct JpegErrors {
  jpeg_error_mgr mgr;  // first: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  bool truncated = false;
  char message[JMSG_LENGTH_MAX] = {};
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

/// Warnings (level -1) are counted, not printed; the end of the data before
/// the end marker marks the file truncated. Trace messages are dropped.
void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  ++cinfo->err->num_warnings;
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) reinterpret_cast<JpegErrors*>(cinfo->err)->truncated = true;
}

struct JpegState {
  jpeg_decompress_struct cinfo{};  // zeroed: safe to destroy even if creation failed
  JpegErrors errors{};
  bool created = false;
  ~JpegState() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

bool jpeg_header(JpegState& s, const Bytes& data) {
  s.cinfo.err = jpeg_std_error(&s.errors.mgr);
  s.errors.mgr.error_exit = jpeg_on_error;
  s.errors.mgr.emit_message = jpeg_on_message;
  if (setjmp(s.errors.jump)) return false;
  s.created = true;
  jpeg_create_decompress(&s.cinfo);
  jpeg_mem_src(&s.cinfo, data.data(), static_cast<unsigned long>(data.size()));
  jpeg_read_header(&s.cinfo, TRUE);
  return true;
}

bool jpeg_pixels(JpegState& s, Image& img) {
  if (setjmp(s.errors.jump)) return false;
  jpeg_start_decompress(&s.cinfo);
  if (s.cinfo.output_width != static_cast<JDIMENSION>(img.width) ||
      s.cinfo.output_height != static_cast<JDIMENSION>(img.height) || s.cinfo.output_components != img.channels) {
    std::snprintf(s.errors.message, sizeof s.errors.message, "the decoder's output does not match the header");
    return false;
  }
  const std::size_t stride = static_cast<std::size_t>(img.width) * img.channels;
  while (s.cinfo.output_scanline < s.cinfo.output_height) {
    JSAMPROW row = img.pixels.data() + stride * s.cinfo.output_scanline;
    if (jpeg_read_scanlines(&s.cinfo, &row, 1) != 1) {
      std::snprintf(s.errors.message, sizeof s.errors.message, "the decoder stopped before the last row");
      return false;
    }
  }
  jpeg_finish_decompress(&s.cinfo);
  return true;
}

Image read_jpeg(const std::string& path, const Bytes& data) {
  JpegState s;
  auto broken = [&] {
    fail(path, s.errors.truncated ? truncated("JPEG", data.size())
                                  : "corrupt JPEG: " + std::string(s.errors.message) + " (re-export the image)");
  };
  if (!jpeg_header(s, data)) broken();
  check_size(path, "JPEG", s.cinfo.image_width, s.cinfo.image_height);
  Image img;
  switch (s.cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      s.cinfo.out_color_space = JCS_GRAYSCALE;
      img.channels = 1;
      break;
    case JCS_YCbCr:
    case JCS_RGB:
      s.cinfo.out_color_space = JCS_RGB;
      img.channels = 3;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      fail(path, "CMYK JPEG is not supported (convert it to RGB)");
    default:
      fail(path, "JPEG with " + std::to_string(s.cinfo.num_components) +
                     " components in an unknown colour space is not supported (convert it to RGB)");
  }
  img.width = static_cast<int>(s.cinfo.image_width);
  img.height = static_cast<int>(s.cinfo.image_height);
  img.pixels.resize(static_cast<std::size_t>(img.width) * img.height * img.channels);
  if (!jpeg_pixels(s, img) || s.errors.truncated) broken();
  return img;
}

// ---- BMP ---------------------------------------------------------------------------

std::uint32_t u32(const Bytes& d, std::size_t at) {
  return d[at] | d[at + 1] << 8 | d[at + 2] << 16 | static_cast<std::uint32_t>(d[at + 3]) << 24;
}
std::uint16_t u16(const Bytes& d, std::size_t at) { return static_cast<std::uint16_t>(d[at] | d[at + 1] << 8); }

/// The shift of a byte-aligned 8-bit mask (0xff << 0, 8, 16 or 24), or -1.
int mask_shift(std::uint32_t mask) {
  for (int s = 0; s < 32; s += 8)
    if (mask == 0xffu << s) return s;
  return -1;
}

Image read_bmp(const std::string& path, const Bytes& d) {
  if (d.size() < 18) fail(path, truncated("BMP", d.size()));
  const std::uint32_t header = u32(d, 14);
  if (header == 12) fail(path, "OS/2 BMP (12-byte header) is not supported (re-save it as PNG)");
  if (header < 40) fail(path, "corrupt BMP: header size " + std::to_string(header) + " (re-export the image)");
  if (d.size() < 54 || header > d.size() - 14) fail(path, truncated("BMP", d.size()));
  const std::uint32_t offset = u32(d, 10);
  const auto width = static_cast<std::int32_t>(u32(d, 18));
  const auto signed_height = static_cast<std::int32_t>(u32(d, 22));
  const int bits = u16(d, 28);
  const std::uint32_t compression = u32(d, 30), colors_used = u32(d, 46);
  const bool top_down = signed_height < 0;
  const std::int64_t height = top_down ? -std::int64_t{signed_height} : signed_height;
  if (width <= 0 || height == 0)
    fail(path, "corrupt BMP: it declares a " + std::to_string(width) + "x" + std::to_string(signed_height) +
                   " image (re-export the image)");
  check_size(path, "BMP", static_cast<std::uint64_t>(width), static_cast<std::uint64_t>(height));
  if (compression == 1 || compression == 2) fail(path, "RLE-compressed BMP is not supported (re-save it uncompressed or as PNG)");
  if (bits != 1 && bits != 4 && bits != 8 && bits != 24 && bits != 32)
    fail(path, std::to_string(bits) + "-bit BMP is not supported (re-save it as 24-bit BMP or as PNG)");
  if (compression != 0 && !(compression == 3 && bits == 32))
    fail(path, "BMP compression " + std::to_string(compression) + " with " + std::to_string(bits) +
                   " bits is not supported (re-save it uncompressed or as PNG)");

  int shift[4] = {16, 8, 0, -1};  // R, G, B, A in a little-endian 32-bit pixel; -1: absent
  if (compression == 3) {         // masks at byte 54 (after a 40-byte header, or inside a larger one)
    if (d.size() < 70) fail(path, truncated("BMP", d.size()));
    const std::uint32_t masks[4] = {u32(d, 54), u32(d, 58), u32(d, 62), header >= 56 ? u32(d, 66) : 0u};
    for (int c = 0; c < 4; ++c) {
      shift[c] = masks[c] == 0 ? -1 : mask_shift(masks[c]);
      if ((c < 3 || masks[c] != 0) && shift[c] < 0)
        fail(path, "BMP bit-field masks other than whole bytes are not supported (re-save it as PNG)");
    }
  }
  const std::size_t palette_at = 14 + header;
  const std::uint32_t palette_size = bits > 8 ? 0 : (colors_used == 0 || colors_used > (1u << bits) ? 1u << bits : colors_used);
  if (palette_at + 4 * std::uint64_t{palette_size} > d.size()) fail(path, truncated("BMP", d.size()));
  const std::uint64_t stride = (std::uint64_t{static_cast<std::uint32_t>(width)} * bits + 31) / 32 * 4;
  if (offset < palette_at || offset > d.size())
    fail(path, "corrupt BMP: pixel data offset " + std::to_string(offset) + " (re-export the image)");
  if (stride * static_cast<std::uint64_t>(height) > d.size() - offset) fail(path, truncated("BMP", d.size()));

  Image img;
  img.width = width;
  img.height = static_cast<int>(height);
  img.channels = shift[3] >= 0 ? 4 : 3;
  img.pixels.resize(static_cast<std::size_t>(width) * img.height * img.channels);
  for (int y = 0; y < img.height; ++y) {
    const std::uint8_t* src = d.data() + offset + stride * static_cast<std::uint64_t>(top_down ? y : img.height - 1 - y);
    std::uint8_t* out = img.pixels.data() + static_cast<std::size_t>(y) * width * img.channels;
    for (int x = 0; x < width; ++x, out += img.channels) {
      if (bits == 24) {
        out[0] = src[3 * x + 2], out[1] = src[3 * x + 1], out[2] = src[3 * x];
      } else if (bits == 32) {
        const std::uint8_t* p = src + 4 * x;
        const std::uint32_t v = p[0] | p[1] << 8 | p[2] << 16 | static_cast<std::uint32_t>(p[3]) << 24;
        for (int c = 0; c < img.channels; ++c) out[c] = static_cast<std::uint8_t>(v >> shift[c]);
      } else {
        const std::size_t bit = static_cast<std::size_t>(x) * bits;
        const unsigned index = (src[bit / 8] >> (8 - bits - bit % 8)) & ((1u << bits) - 1);
        if (index >= palette_size)
          fail(path, "corrupt BMP: pixel (" + std::to_string(x) + ", " + std::to_string(y) + ") uses colour " +
                         std::to_string(index) + " of a " + std::to_string(palette_size) +
                         "-colour palette (re-export the image)");
        const std::uint8_t* bgr = d.data() + palette_at + 4 * index;
        out[0] = bgr[2], out[1] = bgr[1], out[2] = bgr[0];
      }
    }
  }
  return img;
}

// ---- dispatch and helpers ----------------------------------------------------------

/// Whether `d` starts with `magic`, or is cut inside it (`*cut` then says so).
bool starts_with(const Bytes& d, const std::uint8_t* magic, std::size_t n, bool* cut) {
  const std::size_t k = d.size() < n ? d.size() : n;
  if (std::memcmp(d.data(), magic, k) != 0) return false;
  *cut = k < n;
  return true;
}

std::string first_bytes(const Bytes& d) {
  std::string out;
  char hex[16];
  for (std::size_t i = 0; i < d.size() && i < 8; ++i) {
    std::snprintf(hex, sizeof hex, "%s%02x", i ? " " : "", d[i]);
    out += hex;
  }
  return out;
}

void check_image(const Image& img, const char* function) {
  const std::string f = function;
  const std::string size = std::to_string(img.width) + "x" + std::to_string(img.height);
  if (img.width <= 0 || img.height <= 0) throw std::invalid_argument(f + ": empty image (" + size + ")");
  if (img.channels < 1 || img.channels > 4)
    throw std::invalid_argument(f + ": " + std::to_string(img.channels) +
                                " channels (expected 1 gray, 2 gray+alpha, 3 RGB or 4 RGBA)");
  if (img.pixels.size() != static_cast<std::size_t>(img.width) * img.height * img.channels)
    throw std::invalid_argument(f + ": " + std::to_string(img.pixels.size()) + " bytes of pixels for a " + size + " image of " +
                                std::to_string(img.channels) + " channels");
}

struct PngWriteState {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::FILE* file = nullptr;
  std::vector<std::uint8_t>* memory = nullptr;  // encode_png: the bytes go here instead of `file`
  char message[kMessageSize] = {};
  ~PngWriteState() {
    png_destroy_write_struct(&png, &info);
    if (file) std::fclose(file);
  }
};

/// libpng's write callback for encode_png: appends to the vector. An
/// allocation failure is turned into a libpng error after the handler has
/// finished (no C++ exception crosses libpng's C frames).
void png_append_bytes(png_structp png, png_bytep data, size_t n) {
  bool failed = false;
  try {
    auto* out = static_cast<std::vector<std::uint8_t>*>(png_get_io_ptr(png));
    out->insert(out->end(), data, data + n);
  } catch (...) {
    failed = true;
  }
  if (failed) png_error(png, "out of memory");
}

/// encode_png's flush callback: nothing to flush in memory (a null one would
/// make libpng fflush() the vector).
void png_flush_nothing(png_structp) {}

/// What png_encode writes: the size, the sample depth, the colour type and,
/// for a palette image, its colours.
struct PngLayout {
  int width = 0, height = 0, bits = 8, color_type = PNG_COLOR_TYPE_GRAY;
  std::vector<png_color> palette;
};

bool png_encode(PngWriteState& s, const PngLayout& layout, png_bytep* rows) {
  if (setjmp(png_jmpbuf(s.png))) return false;
  if (s.memory)
    png_set_write_fn(s.png, s.memory, png_append_bytes, png_flush_nothing);
  else
    png_init_io(s.png, s.file);
  png_set_IHDR(s.png, s.info, static_cast<png_uint_32>(layout.width), static_cast<png_uint_32>(layout.height), layout.bits,
               layout.color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!layout.palette.empty()) png_set_PLTE(s.png, s.info, layout.palette.data(), static_cast<int>(layout.palette.size()));
  png_write_info(s.png, s.info);
  if (layout.bits == 16) {
    const std::uint16_t probe = 1;
    if (*reinterpret_cast<const std::uint8_t*>(&probe) == 1) png_set_swap(s.png);  // rows are host-order 16-bit samples
  }
  png_write_image(s.png, rows);
  png_write_end(s.png, nullptr);
  return true;
}

}  // namespace

Image read_image(const std::string& path) {
  static const std::uint8_t kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  static const std::uint8_t kJpeg[] = {0xff, 0xd8, 0xff};
  static const std::uint8_t kBmp[] = {'B', 'M'};
  const Bytes data = read_file(path);
  if (data.empty()) fail(path, "empty file (re-copy or re-export the image)");
  bool cut = false;  // the file ends inside the signature
  if (starts_with(data, kPng, sizeof kPng, &cut)) {
    if (cut) fail(path, truncated("PNG", data.size()));
    return read_png(path, data);
  }
  if (starts_with(data, kJpeg, sizeof kJpeg, &cut)) {
    if (cut) fail(path, truncated("JPEG", data.size()));
    return read_jpeg(path, data);
  }
  if (data.size() >= sizeof kBmp && starts_with(data, kBmp, sizeof kBmp, &cut)) return read_bmp(path, data);
  fail(path, "not a PNG, JPEG or BMP image (it starts with " + first_bytes(data) +
                 "; the format is recognised by content, not by the extension: convert it to PNG)");
}

namespace {

/// Writes `rows` laid out as `layout` to `path` + ".tmp", then renames it over `path`.
void write_png_rows(const std::string& path, const PngLayout& layout, png_bytep* rows) {
  const std::string tmp = path + ".tmp";
  bool ok = false;
  std::string why;
  {
    PngWriteState s;
    s.file = std::fopen(tmp.c_str(), "wb");
    if (!s.file)
      fail(path, "cannot create '" + tmp + "' (" + std::strerror(errno) + "; check that the folder exists and is writable)");
    s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s.message, png_on_error, png_on_warning);
    if (s.png) s.info = png_create_info_struct(s.png);
    if (!s.png || !s.info) {
      why = "out of memory starting the PNG encoder";
    } else if (!png_encode(s, layout, rows)) {
      why = std::string("cannot encode the PNG: ") + s.message;
    } else {
      const bool flushed = std::fflush(s.file) == 0 && !std::ferror(s.file);
      const bool closed = std::fclose(s.file) == 0;
      s.file = nullptr;
      ok = flushed && closed;
      if (!ok) why = "cannot write '" + tmp + "' (disk full or I/O error)";
    }
  }
  std::error_code ec;
  if (ok) {
    std::filesystem::rename(tmp, path, ec);
    if (!ec) return;
    why = "cannot rename '" + tmp + "' over it (" + ec.message() + ")";
  }
  std::filesystem::remove(tmp, ec);
  fail(path, why);
}

}  // namespace

void write_png(const std::string& path, const Image& img) {
  check_image(img, "write_png");
  static const int kColorType[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  std::vector<png_bytep> rows(static_cast<std::size_t>(img.height));
  const std::size_t stride = static_cast<std::size_t>(img.width) * img.channels;
  for (std::size_t y = 0; y < rows.size(); ++y) rows[y] = const_cast<png_bytep>(img.pixels.data() + stride * y);
  write_png_rows(path, PngLayout{img.width, img.height, 8, kColorType[img.channels - 1], {}}, rows.data());
}

std::vector<std::uint8_t> encode_png(const Image& img) {
  check_image(img, "encode_png");
  static const int kColorType[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  std::vector<png_bytep> rows(static_cast<std::size_t>(img.height));
  const std::size_t stride = static_cast<std::size_t>(img.width) * img.channels;
  for (std::size_t y = 0; y < rows.size(); ++y) rows[y] = const_cast<png_bytep>(img.pixels.data() + stride * y);
  std::vector<std::uint8_t> bytes;
  bytes.reserve(stride * rows.size() / 2 + 64);
  PngWriteState s;
  s.memory = &bytes;
  s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s.message, png_on_error, png_on_warning);
  if (s.png) s.info = png_create_info_struct(s.png);
  if (!s.png || !s.info) throw std::runtime_error("encode_png: out of memory starting the PNG encoder");
  if (!png_encode(s, PngLayout{img.width, img.height, 8, kColorType[img.channels - 1], {}}, rows.data()))
    throw std::runtime_error(std::string("encode_png: ") + s.message);
  return bytes;
}

Plane read_plane(const std::string& path) {
  static const std::uint8_t kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const Bytes data = read_file(path);
  bool cut = false;
  if (!data.empty() && starts_with(data, kPng, sizeof kPng, &cut) && !cut) return read_png_plane(path, data);
  const Image img = read_image(path);
  Plane plane;
  plane.width = img.width, plane.height = img.height;
  plane.values.resize(static_cast<std::size_t>(img.width) * img.height);
  for (std::size_t i = 0; i < plane.values.size(); ++i) {
    const std::uint8_t* p = img.pixels.data() + i * img.channels;
    if (img.channels == 2 || img.channels == 4 || (img.channels == 3 && (p[0] != p[1] || p[1] != p[2])))
      fail(path, "a " + std::string(img.channels == 2 || img.channels == 4 ? "image with alpha" : "colour image") +
                     " where a map of numbers (gray) is expected: a label map saved as colours has lost its class numbers "
                     "(save the values as 8- or 16-bit gray PNG, or as palette indices)");
    plane.values[i] = p[0];
  }
  return plane;
}

void write_png(const std::string& path, const Plane& plane, const std::vector<std::array<std::uint8_t, 3>>& palette) {
  const std::string f = "write_png(" + path + ")";
  if (plane.width <= 0 || plane.height <= 0 || plane.values.size() != static_cast<std::size_t>(plane.width) * plane.height)
    throw std::invalid_argument(f + ": " + std::to_string(plane.values.size()) + " values for a " + dims(plane.width, plane.height) + " plane");
  if (plane.bits != 8 && plane.bits != 16) throw std::invalid_argument(f + ": writes 8- or 16-bit planes, not " + std::to_string(plane.bits));
  if (!palette.empty() && (plane.bits != 8 || palette.size() > 256))
    throw std::invalid_argument(f + ": a palette needs 8 bits and at most 256 colours");
  const std::uint32_t limit = palette.empty() ? (1u << plane.bits) : static_cast<std::uint32_t>(palette.size());
  for (const std::uint16_t v : plane.values)
    if (v >= limit) throw std::invalid_argument(f + ": value " + std::to_string(v) + " does not fit (must be below " + std::to_string(limit) + ")");
  PngLayout layout{plane.width, plane.height, plane.bits, palette.empty() ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_PALETTE, {}};
  for (const auto& c : palette) layout.palette.push_back(png_color{c[0], c[1], c[2]});
  std::vector<std::uint8_t> bytes;
  const std::size_t stride = static_cast<std::size_t>(plane.width) * (plane.bits / 8);
  if (plane.bits == 8) {
    bytes.assign(plane.values.begin(), plane.values.end());
  } else {
    bytes.resize(plane.values.size() * 2);
    std::memcpy(bytes.data(), plane.values.data(), bytes.size());
  }
  std::vector<png_bytep> rows(static_cast<std::size_t>(plane.height));
  for (std::size_t y = 0; y < rows.size(); ++y) rows[y] = bytes.data() + stride * y;
  write_png_rows(path, layout, rows.data());
}

Image to_gray(const Image& img) {
  check_image(img, "to_gray");
  Image out;
  out.width = img.width, out.height = img.height, out.channels = 1;
  out.pixels.resize(static_cast<std::size_t>(img.width) * img.height);
  const std::uint8_t* p = img.pixels.data();
  for (std::size_t i = 0; i < out.pixels.size(); ++i, p += img.channels)
    out.pixels[i] =
        img.channels <= 2 ? p[0] : static_cast<std::uint8_t>((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16);
  return out;
}

Image to_rgb(const Image& img) {
  check_image(img, "to_rgb");
  Image out;
  out.width = img.width, out.height = img.height, out.channels = 3;
  out.pixels.resize(static_cast<std::size_t>(img.width) * img.height * 3);
  const std::uint8_t* p = img.pixels.data();
  for (std::size_t i = 0; i < out.pixels.size(); i += 3, p += img.channels)
    for (int c = 0; c < 3; ++c) out.pixels[i + c] = p[img.channels <= 2 ? 0 : c];
  return out;
}

}  // namespace umrflow::image2d
