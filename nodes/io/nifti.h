// nifti.h: reading and writing NIfTI volumes (.nii and .nii.gz) with nifti2_io.
//
// Arrays are returned in NIfTI voxel order (i, j, k) = (X, Y, Z), the order
// nibabel's get_fdata() gives: tensor element [i][j][k] is voxel (i, j, k).
// Stored values are converted to float32 and scaled by scl_slope/scl_inter when
// the header sets a non-zero slope. The affine is the sform when its code is
// set, else the qform, else the diagonal of the voxel sizes.
#pragma once

#include <array>
#include <string>
#include <vector>

#include <torch/types.h>

namespace umrflow::io {

/// NIfTI datatype codes that write_nifti accepts.
namespace dtype {
constexpr int uint8 = 2, int16 = 4, int32 = 8, float32 = 16;
}

/// Row-major 4x4 voxel-to-world matrix.
using Affine = std::array<double, 16>;

struct Volume {
  torch::Tensor data;  // float32, shape (X, Y, Z) (more axes kept if present)
  Affine affine{};
  int datatype = 0;  // NIfTI datatype code as stored on disk
};

/// Reads a volume. Throws std::runtime_error naming the file for a missing,
/// truncated or unreadable file or an unsupported datatype.
Volume read_nifti(const std::string& path);

/// Reads only the header's shape (cheap: no voxel data).
std::vector<std::int64_t> read_nifti_shape(const std::string& path);

/// Writes `data` (X, Y, Z[, ...]) as NIfTI-1 with the given on-disk datatype
/// (NIFTI_TYPE_UINT8, _INT16, _INT32 or _FLOAT32); `.gz` compresses. The affine
/// is written as sform and qform (scanner-anatomical). Values are rounded
/// when the datatype is an integer type.
void write_nifti(const std::string& path, const torch::Tensor& data, const Affine& affine, int datatype);

/// Writes `data` (X, Y, Z), the shape of the volume in `reference`, with that
/// file's header: sform and qform (codes and matrices), voxel sizes, units and
/// description; only the datatype changes and the scaling is reset. For
/// results on a scan's grid (a segmentation), which then overlay it in any viewer.
void write_nifti_like(const std::string& path, const torch::Tensor& data, const std::string& reference, int datatype);

/// The identity affine scaled by `spacing` on the diagonal.
Affine diagonal_affine(double sx, double sy, double sz);

}  // namespace umrflow::io
