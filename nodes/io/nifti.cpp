#include "io/nifti.h"

#include <nifti/nifti2_io.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace umrflow::io {

namespace {

struct NimDeleter {
  void operator()(nifti_image* n) const { nifti_image_free(n); }
};
using NimPtr = std::unique_ptr<nifti_image, NimDeleter>;

torch::ScalarType scalar_type(int datatype, const std::string& path) {
  switch (datatype) {
    case NIFTI_TYPE_UINT8: return torch::kUInt8;
    case NIFTI_TYPE_INT8: return torch::kInt8;
    case NIFTI_TYPE_INT16: return torch::kInt16;
    case NIFTI_TYPE_INT32: return torch::kInt32;
    case NIFTI_TYPE_INT64: return torch::kInt64;
    case NIFTI_TYPE_FLOAT32: return torch::kFloat32;
    case NIFTI_TYPE_FLOAT64: return torch::kFloat64;
    case NIFTI_TYPE_UINT16: return torch::kInt32;  // widened below
    default:
      throw std::runtime_error("'" + path + "': unsupported NIfTI datatype " + nifti_datatype_string(datatype) +
                               " (supported: uint8, int8, int16, uint16, int32, int64, float32, float64)");
  }
}

std::vector<std::int64_t> dims_of(const nifti_image* nim) {
  std::vector<std::int64_t> dims;
  for (int d = 1; d <= nim->dim[0]; ++d) dims.push_back(nim->dim[d]);
  while (dims.size() > 3 && dims.back() == 1) dims.pop_back();
  return dims;
}

void check_file(const std::string& path) {
  if (!std::filesystem::exists(path)) throw std::runtime_error("'" + path + "': no such file");
}

/// Reads the voxel block ourselves rather than with nifti_image_load, which
/// silently replaces NaN by 0 and would hide bad data. Byte order is fixed up.
void read_voxels(nifti_image* nim, const std::string& path) {
  const std::int64_t volsize = nifti_get_volsize(nim);
  if (volsize < 0 || nim->iname_offset < 0) throw std::runtime_error("'" + path + "': the header's sizes are negative (corrupt header)");
  const std::size_t bytes = static_cast<std::size_t>(volsize);
  // Check the header's size against the file before allocating: a compressed
  // file cannot expand more than deflate's ratio of about 1032 to 1.
  const std::uintmax_t file_bytes = std::filesystem::file_size(nim->iname);
  const bool gz = nifti_is_gzfile(nim->iname);
  const std::uintmax_t offset = static_cast<std::uintmax_t>(nim->iname_offset);
  if ((!gz && (offset > file_bytes || bytes > file_bytes - offset)) || (gz && bytes / 1100 > file_bytes))
    throw std::runtime_error("'" + path + "': the header declares " + std::to_string(bytes) + " bytes of voxels, more than the " +
                             std::to_string(file_bytes) + "-byte file can hold (truncated, or a corrupt header)");
  znzFile fp = znzopen(nim->iname, "rb", nifti_is_gzfile(nim->iname));
  if (znz_isnull(fp)) throw std::runtime_error("'" + path + "': cannot open the image data");
  std::size_t got = 0;
  nim->data = std::malloc(bytes > 0 ? bytes : 1);
  if (nim->data && znzseek(fp, nim->iname_offset, SEEK_SET) >= 0) got = znzread(nim->data, 1, bytes, fp);
  znzclose(fp);
  if (!nim->data) throw std::runtime_error("'" + path + "': out of memory for " + std::to_string(bytes) + " bytes");
  if (got < bytes)
    throw std::runtime_error("'" + path + "': cannot read the NIfTI file: truncated, its data ends after " +
                             std::to_string(got) + " of " + std::to_string(bytes) + " bytes (re-copy or re-export it)");
  if (nim->byteorder != nifti_short_order() && nim->swapsize > 1)
    nifti_swap_Nbytes(static_cast<int64_t>(bytes / nim->swapsize), nim->swapsize, nim->data);
}

}  // namespace

Affine diagonal_affine(double sx, double sy, double sz) {
  return {sx, 0, 0, 0, 0, sy, 0, 0, 0, 0, sz, 0, 0, 0, 0, 1};
}

std::vector<std::int64_t> read_nifti_shape(const std::string& path) {
  check_file(path);
  nifti_set_debug_level(0);
  NimPtr nim(nifti_image_read(path.c_str(), 0));
  if (!nim) throw std::runtime_error("'" + path + "': not a readable NIfTI header");
  return dims_of(nim.get());
}

Volume read_nifti(const std::string& path) {
  check_file(path);
  nifti_set_debug_level(0);
  NimPtr nim(nifti_image_read(path.c_str(), 0));
  if (!nim) throw std::runtime_error("'" + path + "': cannot read the NIfTI header (not a NIfTI file, or corrupt)");
  read_voxels(nim.get(), path);
  Volume v;
  v.datatype = nim->datatype;
  const auto dims = dims_of(nim.get());
  // NIfTI stores X fastest: read as (..., Z, Y, X) and reverse the axes.
  std::vector<std::int64_t> reversed(dims.rbegin(), dims.rend());
  torch::Tensor raw;
  if (nim->datatype == NIFTI_TYPE_UINT16) {
    raw = torch::from_blob(nim->data, reversed, torch::kInt16).clone().to(torch::kInt32).bitwise_and(0xFFFF);
  } else {
    raw = torch::from_blob(nim->data, reversed, scalar_type(nim->datatype, path)).clone();
  }
  std::vector<std::int64_t> order;
  for (std::int64_t d = static_cast<std::int64_t>(dims.size()) - 1; d >= 0; --d) order.push_back(d);
  torch::Tensor data = raw.permute(order).to(torch::kFloat32).contiguous();
  if (nim->scl_slope != 0.0 && !(nim->scl_slope == 1.0 && nim->scl_inter == 0.0))
    data = data * nim->scl_slope + nim->scl_inter;
  v.data = data;
  const nifti_dmat44& m = nim->sform_code > 0 ? nim->sto_xyz : nim->qto_xyz;
  if (nim->sform_code > 0 || nim->qform_code > 0) {
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) v.affine[4 * r + c] = m.m[r][c];
  } else {
    v.affine = diagonal_affine(nim->dx > 0 ? nim->dx : 1, nim->dy > 0 ? nim->dy : 1, nim->dz > 0 ? nim->dz : 1);
  }
  return v;
}

namespace {

/// The on-disk values of `data` for `datatype`, in NIfTI order (X fastest).
torch::Tensor stored_values(const torch::Tensor& data, int datatype) {
  torch::ScalarType type;
  switch (datatype) {
    case NIFTI_TYPE_UINT8: type = torch::kUInt8; break;
    case NIFTI_TYPE_INT16: type = torch::kInt16; break;
    case NIFTI_TYPE_INT32: type = torch::kInt32; break;
    case NIFTI_TYPE_FLOAT32: type = torch::kFloat32; break;
    default: throw std::invalid_argument("write_nifti: datatype must be uint8, int16, int32 or float32");
  }
  if (data.dim() < 1 || data.dim() > 7) throw std::invalid_argument("write_nifti: 1 to 7 axes");
  torch::Tensor values = data.detach().cpu();
  if (type != torch::kFloat32) values = values.round();
  std::vector<std::int64_t> order;
  for (std::int64_t d = data.dim() - 1; d >= 0; --d) order.push_back(d);
  return values.to(type).permute(order).contiguous();
}

/// Copies `stored` into the image's data block and writes it to `path`.
void write_image(nifti_image* nim, const torch::Tensor& stored, const std::string& path, std::int64_t axes) {
  std::memcpy(nim->data, stored.data_ptr(), stored.nbytes());
  if (nifti_set_filenames(nim, path.c_str(), 0, 1) != 0)
    throw std::runtime_error("'" + path + "': not a NIfTI file name (use .nii or .nii.gz)");
  nifti_image_write(nim);  // reports no status: read the header back to know it worked
  bool ok = false;
  try {
    ok = std::filesystem::exists(path) && read_nifti_shape(path).size() == static_cast<std::size_t>(axes);
  } catch (const std::exception&) {
  }
  if (!ok) throw std::runtime_error("'" + path + "': writing failed (folder missing, not writable, or disk full)");
}

}  // namespace

void write_nifti(const std::string& path, const torch::Tensor& data, const Affine& affine, int datatype) {
  const torch::Tensor stored = stored_values(data, datatype);
  int64_t dims[8] = {data.dim(), 1, 1, 1, 1, 1, 1, 1};
  for (int d = 0; d < data.dim(); ++d) dims[d + 1] = data.size(d);
  NimPtr nim(nifti_make_new_nim(dims, datatype, 1));  // 1: allocate the data block
  if (!nim || !nim->data) throw std::runtime_error("'" + path + "': cannot create a NIfTI image");
  nifti_dmat44 m;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) m.m[r][c] = affine[4 * r + c];
  nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
  nim->sto_xyz = m;
  nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
  nifti_dmat44_to_quatern(m, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d, &nim->qoffset_x, &nim->qoffset_y,
                          &nim->qoffset_z, &nim->dx, &nim->dy, &nim->dz, &nim->qfac);
  nim->pixdim[1] = nim->dx;
  nim->pixdim[2] = nim->dy;
  nim->pixdim[3] = nim->dz;
  nim->qto_xyz = nifti_quatern_to_dmat44(nim->quatern_b, nim->quatern_c, nim->quatern_d, nim->qoffset_x, nim->qoffset_y,
                                         nim->qoffset_z, nim->dx, nim->dy, nim->dz, nim->qfac);
  nim->nifti_type = NIFTI_FTYPE_NIFTI1_1;
  write_image(nim.get(), stored, path, data.dim());
}

void write_nifti_like(const std::string& path, const torch::Tensor& data, const std::string& reference, int datatype) {
  check_file(reference);
  nifti_set_debug_level(0);
  NimPtr nim(nifti_image_read(reference.c_str(), 0));
  if (!nim) throw std::runtime_error("'" + reference + "': cannot read the NIfTI header (not a NIfTI file, or corrupt)");
  const auto dims = dims_of(nim.get());
  if (data.dim() != 3 || dims.size() != 3 || !std::equal(dims.begin(), dims.end(), data.sizes().begin()))
    throw std::invalid_argument("write_nifti_like: data " + c10::str(data.sizes()) + " does not have the shape of '" + reference + "'");
  const torch::Tensor stored = stored_values(data, datatype);
  int bytes_per_voxel = 0, swap = 0;
  nifti_datatype_sizes(datatype, &bytes_per_voxel, &swap);
  nim->datatype = datatype;
  nim->nbyper = bytes_per_voxel;
  nim->swapsize = swap;
  nim->byteorder = nifti_short_order();
  nim->scl_slope = 1;  // the values are stored as they are
  nim->scl_inter = 0;
  nim->cal_min = nim->cal_max = 0;
  // One file (.nii or .nii.gz), NIfTI-1 or -2 as the reference.
  nim->nifti_type = nim->nifti_type == NIFTI_FTYPE_NIFTI2_1 || nim->nifti_type == NIFTI_FTYPE_NIFTI2_2 ? NIFTI_FTYPE_NIFTI2_1
                                                                                                       : NIFTI_FTYPE_NIFTI1_1;
  nim->data = std::malloc(stored.nbytes() > 0 ? stored.nbytes() : 1);
  if (!nim->data) throw std::runtime_error("'" + path + "': out of memory");
  write_image(nim.get(), stored, path, 3);
}

}  // namespace umrflow::io
