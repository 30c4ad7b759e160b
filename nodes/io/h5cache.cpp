#include "io/h5cache.h"

#include "umrflow/files.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace umrflow::io {

namespace {

constexpr hsize_t kChunk = 32;

/// Closes an HDF5 handle on scope exit.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Handle() {
    if (id >= 0) close(id);
  }
  operator hid_t() const { return id; }
};

void check(herr_t status, const std::string& what) {
  if (status < 0) throw std::runtime_error(what);
}

void write_attr_ints(hid_t obj, const char* name, const std::vector<std::int64_t>& v) {
  hsize_t n = v.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle attr(H5Acreate2(obj, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  check(H5Awrite(attr, H5T_NATIVE_INT64, v.data()), std::string("writing attribute ") + name);
}
void write_attr_doubles(hid_t obj, const char* name, const std::vector<double>& v) {
  hsize_t n = v.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle attr(H5Acreate2(obj, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  check(H5Awrite(attr, H5T_NATIVE_DOUBLE, v.data()), std::string("writing attribute ") + name);
}
/// Fixed-length strings: a damaged file cannot send the reader into the
/// global heap that variable-length strings live on.
void write_attr_strings(hid_t obj, const char* name, const std::vector<std::string>& v) {
  std::size_t width = 1;
  for (const auto& s : v) width = std::max(width, s.size() + 1);
  std::string packed(width * v.size(), '\0');
  for (std::size_t i = 0; i < v.size(); ++i) packed.replace(i * width, v[i].size(), v[i]);
  hsize_t n = v.size();
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, width);
  H5Tset_strpad(type, H5T_STR_NULLTERM);
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  check(H5Awrite(attr, type, packed.data()), std::string("writing attribute ") + name);
}

/// The number of values of attribute `name` (at most `limit`: a damaged size
/// is an error, not a huge allocation).
hsize_t attr_count(hid_t attr, const char* name, hsize_t limit) {
  Handle space(H5Aget_space(attr), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 0 || static_cast<hsize_t>(n) > limit)
    throw std::runtime_error(std::string("attribute '") + name + "' has " + std::to_string(n) + " values (damaged?)");
  return static_cast<hsize_t>(n);
}

std::vector<std::int64_t> read_attr_ints(hid_t obj, const char* name) {
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (attr < 0) throw std::runtime_error(std::string("missing attribute '") + name + "'");
  std::vector<std::int64_t> v(attr_count(attr, name, 64));
  check(H5Aread(attr, H5T_NATIVE_INT64, v.data()), std::string("reading attribute ") + name);
  return v;
}
std::vector<double> read_attr_doubles(hid_t obj, const char* name) {
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (attr < 0) throw std::runtime_error(std::string("missing attribute '") + name + "'");
  std::vector<double> v(attr_count(attr, name, 64));
  check(H5Aread(attr, H5T_NATIVE_DOUBLE, v.data()), std::string("reading attribute ") + name);
  return v;
}
std::vector<std::string> read_attr_strings(hid_t obj, const char* name) {
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (attr < 0) throw std::runtime_error(std::string("missing attribute '") + name + "'");
  const hsize_t n = attr_count(attr, name, 4096);
  Handle stored(H5Aget_type(attr), H5Tclose);
  if (stored < 0 || H5Tget_class(stored) != H5T_STRING) throw std::runtime_error(std::string("attribute '") + name + "' is not text");
  std::vector<std::string> out;
  if (H5Tis_variable_str(stored) > 0) {  // caches written before version 2
    Handle space(H5Aget_space(attr), H5Sclose);
    std::vector<char*> ptrs(n, nullptr);
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type, H5T_VARIABLE);
    check(H5Aread(attr, type, ptrs.data()), std::string("reading attribute ") + name);
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, ptrs.data());
    return out;
  }
  const std::size_t width = H5Tget_size(stored);
  if (width == 0 || width > 4096) throw std::runtime_error(std::string("attribute '") + name + "' has a damaged width");
  std::string packed(width * n, '\0');
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, width);
  H5Tset_strpad(type, H5T_STR_NULLTERM);
  check(H5Aread(attr, type, packed.data()), std::string("reading attribute ") + name);
  for (hsize_t i = 0; i < n; ++i) out.emplace_back(packed.c_str() + i * width);
  return out;
}

void write_array(hid_t group, const char* name, const torch::Tensor& t, hid_t type) {
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  std::vector<hsize_t> chunk = {1};
  for (std::size_t a = 1; a < dims.size(); ++a) chunk.push_back(std::min<hsize_t>(kChunk, dims[a]));
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle props(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(props, static_cast<int>(chunk.size()), chunk.data());
  H5Pset_shuffle(props);
  H5Pset_deflate(props, 1);
  H5Pset_fletcher32(props);  // a checksum per chunk: a damaged chunk fails its read
  Handle ds(H5Dcreate2(group, name, type, space, H5P_DEFAULT, props, H5P_DEFAULT), H5Dclose);
  if (ds < 0) throw std::runtime_error(std::string("cannot create dataset ") + name);
  check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.contiguous().data_ptr()), std::string("writing ") + name);
}

std::once_flag quiet_once;
void quiet() {
  std::call_once(quiet_once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

}  // namespace

void write_cache(const std::string& out, const std::vector<std::string>& modalities, const std::vector<std::string>& regions,
                 std::int64_t count, const std::function<CaseData(std::int64_t)>& next,
                 const std::function<void(std::int64_t, std::int64_t)>& progress) {
  quiet();
  const std::string tmp = out + ".tmp";
  try {
    // The newest file format: superblock, object headers (attributes included) and indices carry checksums.
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), H5Fclose);
    if (file < 0) throw std::runtime_error("'" + tmp + "': cannot create (is the folder there and writable?)");
    {
      Handle root(H5Gopen2(file, "/", H5P_DEFAULT), H5Gclose);
      write_attr_strings(root, "format", {"umrflow.brats-cache"});
      write_attr_ints(root, "version", {2});
      write_attr_strings(root, "modalities", modalities);
      write_attr_strings(root, "regions", regions);
    }
    Handle cases(H5Gcreate2(file, "cases", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    for (std::int64_t i = 0; i < count; ++i) {
      CaseData c = next(i);
      const torch::Tensor fg = (c.image > 0).any(0);
      std::vector<std::int64_t> start(3, 0), stop(3, 0);
      if (fg.any().item<bool>()) {
        const torch::Tensor idx = torch::nonzero(fg);
        for (int a = 0; a < 3; ++a) {
          start[a] = idx.select(1, a).min().item<std::int64_t>();
          stop[a] = idx.select(1, a).max().item<std::int64_t>() + 1;
        }
      }
      auto crop = [&](const torch::Tensor& t) {
        return t.slice(1, start[0], stop[0]).slice(2, start[1], stop[1]).slice(3, start[2], stop[2]).contiguous();
      };
      torch::Tensor image = crop(c.image.to(torch::kFloat32));
      const bool integral = torch::equal(image, image.round()) && image.numel() > 0 && image.abs().max().item<float>() <= 32767;
      Handle group(H5Gcreate2(cases, c.id.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
      if (group < 0) throw std::runtime_error("case '" + c.id + "': cannot create its group (duplicate id?)");
      if (integral) write_array(group, "image", image.to(torch::kInt16), H5T_NATIVE_INT16);
      else write_array(group, "image", image, H5T_NATIVE_FLOAT);
      write_array(group, "label", crop(c.label.to(torch::kUInt8)), H5T_NATIVE_UINT8);
      write_attr_ints(group, "original_shape", {c.image.size(1), c.image.size(2), c.image.size(3)});
      write_attr_ints(group, "box_start", start);
      write_attr_ints(group, "box_stop", stop);
      write_attr_doubles(group, "affine", c.affine);
      if (progress) progress(i + 1, count);
    }
  } catch (...) {
    std::remove(tmp.c_str());  // the handles above are closed by now: no half-written cache stays behind
    throw;
  }
  commit_file(tmp, out);
}

CacheReader::CacheReader(const std::string& path, std::size_t memory_budget) : path_(path), decoded_(memory_budget) {
  quiet();
  if (!std::filesystem::exists(path)) throw std::runtime_error("'" + path + "': no such file (write it with `umrflow convert brats`)");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw std::runtime_error("'" + path + "': not an HDF5 file, or truncated (convert it again with `umrflow convert brats`)");
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // A chunk cache large enough for the chunks one 128^3 crop of one modality touches (5^3 chunks of 64 KiB).
  H5Pset_cache(fapl, 0, 1009, 16u << 20, 0.75);
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  if (file_ < 0) throw std::runtime_error("'" + path + "': cannot open (truncated or damaged; convert it again)");
  try {
    Handle root(H5Gopen2(file_, "/", H5P_DEFAULT), H5Gclose);
    const auto format = read_attr_strings(root, "format");
    if (format.empty() || format[0] != "umrflow.brats-cache") throw std::runtime_error("not a umrflow BraTS cache");
    const auto version = read_attr_ints(root, "version");
    if (version.size() != 1 || version[0] < 1 || version[0] > 2)
      throw std::runtime_error("cache format version " + (version.empty() ? std::string("?") : std::to_string(version[0])) +
                               " is not one this build reads (1-2)");
    modalities_ = read_attr_strings(root, "modalities");
    regions_ = read_attr_strings(root, "regions");
    Handle group(H5Gopen2(file_, "cases", H5P_DEFAULT), H5Gclose);
    if (group < 0) throw std::runtime_error("no /cases group");
    H5G_info_t info;
    check(H5Gget_info(group, &info), "reading /cases");
    for (hsize_t i = 0; i < info.nlinks; ++i) {
      char name[256];
      if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0)
        throw std::runtime_error("cannot list /cases");
      Handle c(H5Gopen2(group, name, H5P_DEFAULT), H5Gclose);
      CachedCase cc;
      cc.id = name;
      cc.original_shape = read_attr_ints(c, "original_shape");
      cc.box_start = read_attr_ints(c, "box_start");
      cc.box_stop = read_attr_ints(c, "box_stop");
      cc.affine = read_attr_doubles(c, "affine");
      if (cc.original_shape.size() != 3 || cc.box_start.size() != 3 || cc.box_stop.size() != 3 || cc.affine.size() != 16)
        throw std::runtime_error("case '" + cc.id + "': damaged shape, box or affine attributes");
      Handle ds(H5Dopen2(c, "image", H5P_DEFAULT), H5Dclose);
      if (ds < 0) throw std::runtime_error("case '" + cc.id + "' has no image");
      Handle space(H5Dget_space(ds), H5Sclose);
      hsize_t dims[4];
      if (H5Sget_simple_extent_ndims(space) != 4) throw std::runtime_error("case '" + cc.id + "': image is not 4-D");
      H5Sget_simple_extent_dims(space, dims, nullptr);
      cc.stored_shape.assign(dims, dims + 4);
      for (int a = 0; a < 3; ++a)
        if (static_cast<std::int64_t>(dims[a + 1]) != cc.box_stop[a] - cc.box_start[a])
          throw std::runtime_error("case '" + cc.id + "': the image's shape disagrees with its brain box");
      if (dims[0] != modalities_.size()) throw std::runtime_error("case '" + cc.id + "': the image's channels disagree with the modalities");
      cases_.push_back(std::move(cc));
    }
  } catch (const std::exception& e) {
    H5Fclose(file_);
    file_ = -1;
    throw std::runtime_error("'" + path + "': " + e.what());
  }
}

CacheReader::~CacheReader() {
  if (file_ >= 0) H5Fclose(file_);
}

namespace {

/// The stored element type of a dataset, when the chunk decoder can convert it.
enum class Stored { int16, float32, uint8, other };
Stored stored_type(hid_t ds) {
  Handle t(H5Dget_type(ds), H5Tclose);
  if (H5Tequal(t, H5T_NATIVE_INT16) > 0) return Stored::int16;
  if (H5Tequal(t, H5T_NATIVE_FLOAT) > 0) return Stored::float32;
  if (H5Tequal(t, H5T_NATIVE_UINT8) > 0) return Stored::uint8;
  return Stored::other;
}

/// The filter pipeline of `ds` when it is one decode_chunk undoes (shuffle,
/// deflate, Fletcher-32, each optional, in that order), and its chunk shape.
bool chunk_layout(hid_t ds, ChunkFilters& filters, hsize_t chunk[4]) {
  Handle dcpl(H5Dget_create_plist(ds), H5Pclose);
  if (dcpl < 0 || H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_chunk(dcpl, 4, chunk) != 4 || chunk[0] != 1) return false;
  for (int a = 1; a < 4; ++a)
    if (chunk[a] < 1 || chunk[a] > 1024) return false;
  filters = ChunkFilters{false, false, false, -1, -1, -1};
  const int n = H5Pget_nfilters(dcpl);
  if (n < 0) return false;  // unknown pipeline: HDF5 reads it
  int last = -1;
  for (int f = 0; f < n; ++f) {
    unsigned flags = 0, info = 0;
    std::size_t nvalues = 8;
    unsigned values[8];
    char name[64];
    const H5Z_filter_t id = H5Pget_filter2(dcpl, static_cast<unsigned>(f), &flags, &nvalues, values, sizeof name, name, &info);
    const int order = id == H5Z_FILTER_SHUFFLE ? 0 : id == H5Z_FILTER_DEFLATE ? 1 : id == H5Z_FILTER_FLETCHER32 ? 2 : -1;
    if (order <= last) return false;
    last = order;
    if (order == 0) filters.shuffle = true, filters.shuffle_bit = f;
    if (order == 1) filters.deflate = true, filters.deflate_bit = f;
    if (order == 2) filters.fletcher32 = true, filters.fletcher_bit = f;
  }
  return true;
}

/// Copies the part of a decoded chunk (origin `at`, shape `cs`) that lies in
/// [lo, hi) into `out` (shape `size`, origin `start` in stored voxels), or
/// zeros there when `src` is null (a chunk never written holds the fill value 0).
template <class From, class To>
void place_chunk(const std::uint8_t* src, const hsize_t at[4], const hsize_t cs[4], const std::int64_t lo[3], const std::int64_t hi[3],
                 const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& size, To* out) {
  std::int64_t a[3], b[3];
  for (int d = 0; d < 3; ++d) {
    a[d] = std::max<std::int64_t>(lo[d], static_cast<std::int64_t>(at[d + 1]));
    b[d] = std::min<std::int64_t>(hi[d], static_cast<std::int64_t>(at[d + 1] + cs[d + 1]));
  }
  const std::int64_t run = b[2] - a[2];
  for (std::int64_t x = a[0]; x < b[0]; ++x)
    for (std::int64_t y = a[1]; y < b[1]; ++y) {
      To* dst = out + ((static_cast<std::int64_t>(at[0]) * size[0] + x - start[0]) * size[1] + y - start[1]) * size[2] + a[2] - start[2];
      if (!src) {
        std::fill(dst, dst + run, To(0));
        continue;
      }
      const std::int64_t offset = ((x - static_cast<std::int64_t>(at[1])) * static_cast<std::int64_t>(cs[2]) + y - static_cast<std::int64_t>(at[2])) *
                                      static_cast<std::int64_t>(cs[3]) + a[2] - static_cast<std::int64_t>(at[3]);
      From v[32];
      const std::uint8_t* p = src + offset * static_cast<std::int64_t>(sizeof(From));
      for (std::int64_t z = 0; z < run; z += 32) {
        const std::int64_t m = std::min<std::int64_t>(32, run - z);
        std::memcpy(v, p + z * static_cast<std::int64_t>(sizeof(From)), m * sizeof(From));
        for (std::int64_t k = 0; k < m; ++k) dst[z + k] = static_cast<To>(v[k]);
      }
    }
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> CacheReader::read(std::size_t i, const std::vector<std::int64_t>& start,
                                                          const std::vector<std::int64_t>& size) const {
  return {read_dataset(i, 0, start, size, true), read_dataset(i, 1, start, size, true)};
}

std::pair<torch::Tensor, torch::Tensor> CacheReader::read_by_hyperslab(std::size_t i, const std::vector<std::int64_t>& start,
                                                                       const std::vector<std::int64_t>& size) const {
  return {read_dataset(i, 0, start, size, false), read_dataset(i, 1, start, size, false)};
}

torch::Tensor CacheReader::read_dataset(std::size_t i, int which, const std::vector<std::int64_t>& start,
                                        const std::vector<std::int64_t>& size, bool by_chunks) const {
  const CachedCase& c = cases_.at(i);
  const char* name = which == 0 ? "image" : "label";
  const torch::ScalarType dtype = which == 0 ? torch::kFloat32 : torch::kUInt8;
  const std::string where = "'" + path_ + "', case " + c.id + ", /" + name;
  Handle ds(H5Dopen2(file_, ("cases/" + c.id + "/" + name).c_str(), H5P_DEFAULT), H5Dclose);
  if (ds < 0) throw std::runtime_error(where + ": cannot open");
  Handle space(H5Dget_space(ds), H5Sclose);
  hsize_t dims[4];
  if (H5Sget_simple_extent_ndims(space) != 4) throw std::runtime_error(where + ": not 4-D (the file is damaged; convert it again)");
  H5Sget_simple_extent_dims(space, dims, nullptr);
  for (int a = 0; a < 3; ++a)
    if (static_cast<std::int64_t>(dims[a + 1]) != c.stored_shape[a + 1])
      throw std::runtime_error(where + ": its shape disagrees with the image's (the file is damaged; convert it again)");
  if (dims[0] > 64) throw std::runtime_error(where + ": " + std::to_string(dims[0]) + " channels (the file is damaged; convert it again)");
  // The part of the requested window that lies inside the stored box.
  std::int64_t lo[3], hi[3];
  bool inside = true, empty = false;
  for (int a = 0; a < 3; ++a) {
    lo[a] = std::max<std::int64_t>(0, start[a]);
    hi[a] = std::min<std::int64_t>(static_cast<std::int64_t>(dims[a + 1]), start[a] + size[a]);
    inside = inside && lo[a] == start[a] && hi[a] == start[a] + size[a];
    empty = empty || hi[a] <= lo[a];
  }
  const std::int64_t channels = static_cast<std::int64_t>(dims[0]);
  ChunkFilters filters;
  hsize_t cs[4];
  const Stored type = stored_type(ds);
  const bool decodable = by_chunks && type != Stored::other && (which == 0) == (type != Stored::uint8) && chunk_layout(ds, filters, cs);
  torch::Tensor out = decodable && inside ? torch::empty({channels, size[0], size[1], size[2]}, dtype)
                                          : torch::zeros({channels, size[0], size[1], size[2]}, dtype);
  if (empty) return out;
  if (!decodable) {
    hsize_t file_start[4] = {0}, count[4] = {dims[0]}, mem_start[4] = {0};
    for (int a = 0; a < 3; ++a) {
      file_start[a + 1] = lo[a];
      count[a + 1] = hi[a] - lo[a];
      mem_start[a + 1] = lo[a] - start[a];
    }
    hsize_t mem_dims[4] = {dims[0], static_cast<hsize_t>(size[0]), static_cast<hsize_t>(size[1]), static_cast<hsize_t>(size[2])};
    Handle mem(H5Screate_simple(4, mem_dims, nullptr), H5Sclose);
    check(H5Sselect_hyperslab(space, H5S_SELECT_SET, file_start, nullptr, count, nullptr), where + ": bad selection");
    check(H5Sselect_hyperslab(mem, H5S_SELECT_SET, mem_start, nullptr, count, nullptr), where + ": bad selection");
    if (H5Dread(ds, which == 0 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, out.data_ptr()) < 0)
      throw std::runtime_error(where + ": read failed (the file is truncated or damaged; convert it again)");
    return out;
  }
  for (int a = 0; a < 3; ++a)
    if (dims[a + 1] / cs[a + 1] >= 4096) throw std::runtime_error(where + ": too many chunks (the file is damaged; convert it again)");
  const std::size_t element = type == Stored::int16 ? 2 : type == Stored::float32 ? 4 : 1;
  const std::size_t chunk_bytes = static_cast<std::size_t>(cs[1] * cs[2] * cs[3]) * element;
  for (hsize_t ch = 0; ch < dims[0]; ++ch)
    for (hsize_t x = lo[0] / cs[1] * cs[1]; x < static_cast<hsize_t>(hi[0]); x += cs[1])
      for (hsize_t y = lo[1] / cs[2] * cs[2]; y < static_cast<hsize_t>(hi[1]); y += cs[2])
        for (hsize_t z = lo[2] / cs[3] * cs[3]; z < static_cast<hsize_t>(hi[2]); z += cs[3]) {
          const hsize_t at[4] = {ch, x, y, z};
          // Key: case, dataset, channel and chunk position (each position below 2^12 chunks per axis).
          const std::uint64_t key = ((((static_cast<std::uint64_t>(i) * 2 + which) * 64 + ch) << 36) | (x / cs[1]) << 24 |
                                     (y / cs[2]) << 12 | (z / cs[3]));
          DecodedChunks::Chunk chunk = decoded_.find(key);
          if (!chunk) {
            hsize_t stored = 0;  // 0: a chunk never written
            if (H5Dget_chunk_storage_size(ds, at, &stored) < 0)
              throw std::runtime_error(where + ": cannot find a chunk (the file is damaged; convert it again)");
            if (stored > 0) {
              if (stored > 2 * chunk_bytes + 4096)
                throw std::runtime_error(where + ": a chunk of " + std::to_string(stored) + " bytes (the file is damaged; convert it again)");
              std::vector<std::uint8_t> raw(stored);
              std::uint32_t mask = 0;
              if (H5Dread_chunk(ds, H5P_DEFAULT, at, &mask, raw.data()) < 0)
                throw std::runtime_error(where + ": read failed (the file is truncated or damaged; convert it again)");
              try {
                chunk = std::make_shared<const Bytes>(decode_chunk(raw, mask, filters, chunk_bytes, element));
              } catch (const std::exception& e) {
                throw std::runtime_error(where + ": " + e.what() + " (the file is damaged; convert it again)");
              }
              decoded_.offer(key, chunk);
            }
          }
          const std::uint8_t* src = chunk ? chunk->data() : nullptr;
          if (type == Stored::int16) place_chunk<std::int16_t>(src, at, cs, lo, hi, start, size, out.data_ptr<float>());
          else if (type == Stored::float32) place_chunk<float>(src, at, cs, lo, hi, start, size, out.data_ptr<float>());
          else place_chunk<std::uint8_t>(src, at, cs, lo, hi, start, size, out.data_ptr<std::uint8_t>());
        }
  return out;
}

}  // namespace umrflow::io
