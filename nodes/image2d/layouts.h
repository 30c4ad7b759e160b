// layouts.h: finding the images of the public 2D data sets on disk, without
// reading them (../shared/reference/unimrseg.md, section 3).
//
// Files are matched by stem, the file name without its last extension
// ("0001.jpg" and "0001.png" are both "0001"). Only files whose extension is
// jpg, jpeg, png or bmp (any case) count; other files (Thumbs.db, .DS_Store,
// notes) and subfolders are ignored, as are names starting with '.'. Folder
// names are exact (case-sensitive); when a folder is missing but one whose name
// differs only in case exists, the error says so.
//
//  - RGB-D SOD (NJUD, NLPR, STERE, ... as SSLSOD's test roots are laid out):
//      root/RGB/<id>.jpg   root/depth/<id>.png|bmp   root/GT/<id>.png
//  - RGB-T SOD (VT5000, VT1000, ...):
//      root/RGB/<id>.jpg   root/T/<id>.jpg           root/GT/<id>.png
//  - SUN-RGBD:
//      root/image/<id>.jpg root/depth/<id>.png       root/label/<id>.png
//    and a split list naming the ids of one split.
//
// Errors are std::runtime_error naming the root, folder or file and saying
// what to do. Problems of one kind (images without a partner) are gathered and
// reported together: the first few, then how many in all.
#pragma once

#include <string>
#include <vector>

namespace umrflow::image2d {

/// One sample: an RGB image, its second modality (depth or thermal), and its
/// ground truth (a saliency mask, or SUN-RGBD's class labels). Paths are
/// root-joined; `gt` is empty when ground truth was not asked for.
struct PairedItem {
  std::string id;  // the shared file stem
  std::string rgb, aux, gt;
};

/// The samples of an RGB-D (`aux_folder` "depth") or RGB-T (`aux_folder` "T")
/// SOD root, sorted by id (byte order, as Python's sorted()). Every image in
/// RGB/ must have exactly one partner with its stem in `aux_folder`/ and, when
/// `need_gt`, in GT/; an image in `aux_folder`/ or GT/ without an RGB partner
/// is an error too (a data set copied in part). Without `need_gt` GT/ is not
/// looked at (it may be absent). Throws std::runtime_error for a missing root
/// or folder (naming the layout expected), a stem used by two files in one
/// folder, an image without a partner (naming the file and the folder searched)
/// and an RGB/ folder without images; std::invalid_argument for an empty
/// `aux_folder`.
std::vector<PairedItem> discover_sod(const std::string& root, const std::string& aux_folder, bool need_gt);

/// The SUN-RGBD samples listed in `split_file`, in the list's order: root/image,
/// root/depth and root/label each hold one image per id. The list has one id
/// per line; text after '#' is a comment; blank lines and surrounding
/// whitespace are ignored. Throws std::runtime_error for a missing root, folder
/// or list, a line holding more than one word, an id listed twice, an id with no
/// image in one of the folders (naming the list's line), a listed id matching
/// two files in one folder, and a list without ids. Images not in the list are
/// ignored (the folders may hold both splits).
std::vector<PairedItem> discover_sunrgbd(const std::string& root, const std::string& split_file);

}  // namespace umrflow::image2d
