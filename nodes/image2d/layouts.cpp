#include "image2d/layouts.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <utility>

namespace umrflow::image2d {

namespace {

namespace fs = std::filesystem;

/// The image files of one folder: stem -> file names (sorted; two or more
/// make the stem ambiguous).
using Index = std::map<std::string, std::vector<std::string>>;

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* const kLooked = ".jpg, .jpeg, .png or .bmp";

bool is_image_name(const fs::path& p) {
  const std::string ext = lower(p.extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

/// Problems of one kind, reported together: the first few, then the count.
class Problems {
 public:
  void add(const std::string& line) {
    if (lines_.size() < kShown) lines_.push_back(line);
    ++count_;
  }
  /// Throws when anything was added; `where` and `what` head a list of several.
  void raise(const std::string& where, const std::string& what) const {
    if (count_ == 0) return;
    if (count_ == 1) throw std::runtime_error(lines_.front());
    std::string message = where + ": " + std::to_string(count_) + " " + what + ":";
    for (const auto& line : lines_) message += "\n  " + line;
    if (count_ > lines_.size()) message += "\n  ... and " + std::to_string(count_ - lines_.size()) + " more";
    throw std::runtime_error(message);
  }

 private:
  static constexpr std::size_t kShown = 5;
  std::vector<std::string> lines_;
  std::size_t count_ = 0;
};

void require_root(const fs::path& root, const std::string& layout) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw std::runtime_error(quoted(root) + ": no such folder; " + layout);
}

/// root/name, which must be a folder; a folder whose name differs only in case
/// is named in the error.
fs::path require_folder(const fs::path& root, const std::string& name, const std::string& layout) {
  const fs::path dir = root / name;
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return dir;
  std::string hint;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string found = it->path().filename().string();
    std::error_code kind;
    if (lower(found) == lower(name) && it->is_directory(kind))
      hint = " (there is '" + found + "': rename it to '" + name + "'; folder names are case-sensitive)";
  }
  throw std::runtime_error(quoted(root) + ": no folder '" + name + "'" + hint + "; " + layout);
}

Index index_folder(const fs::path& dir) {
  Index index;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    std::error_code kind;
    if (name.empty() || name[0] == '.' || !is_image_name(p) || !it->is_regular_file(kind)) continue;
    index[p.stem().string()].push_back(name);
  }
  if (ec) throw std::runtime_error(quoted(dir) + ": cannot list the folder (" + ec.message() + ")");
  for (auto& entry : index) std::sort(entry.second.begin(), entry.second.end());
  return index;
}

std::string ambiguous(const fs::path& dir, const std::string& stem, const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "'" : ", '") + n + "'";
  return quoted(dir) + ": " + std::to_string(names.size()) + " files with the stem '" + stem + "' (" + list + "): keep one";
}

void check_unique(const fs::path& dir, const Index& index, Problems& problems) {
  for (const auto& [stem, names] : index)
    if (names.size() > 1) problems.add(ambiguous(dir, stem, names));
}

/// Every image of `from` needs a partner with its stem in `to`.
void check_partners(const fs::path& from_dir, const Index& from, const fs::path& to_dir, const Index& to, Problems& problems) {
  for (const auto& [stem, names] : from)
    if (!to.count(stem))
      problems.add(quoted(from_dir / names.front()) + " has no partner in " + quoted(to_dir) + " (looked for " + stem + kLooked +
                   ")");
}

std::string trim(const std::string& s) {
  const char* const space = " \t\r\n\f\v";
  const std::size_t first = s.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

}  // namespace

std::vector<PairedItem> discover_sod(const std::string& root_path, const std::string& aux_folder, bool need_gt) {
  if (aux_folder.empty()) throw std::invalid_argument("discover_sod: empty aux_folder (\"depth\" or \"T\")");
  const std::string kind = aux_folder == "depth" ? "an RGB-D SOD root" : aux_folder == "T" ? "an RGB-T SOD root" : "a SOD root";
  const std::string layout =
      kind + " holds RGB/, " + aux_folder + "/ and GT/, one image per id in each, matched by file name without extension";
  const fs::path root(root_path);
  require_root(root, layout);
  const fs::path rgb_dir = require_folder(root, "RGB", layout), aux_dir = require_folder(root, aux_folder, layout);
  const fs::path gt_dir = need_gt ? require_folder(root, "GT", layout) : fs::path();
  const Index rgb = index_folder(rgb_dir), aux = index_folder(aux_dir), gt = need_gt ? index_folder(gt_dir) : Index();
  if (rgb.empty())
    throw std::runtime_error(quoted(rgb_dir) + ": no images (" + kLooked + " files); is '" + root_path +
                             "' the data set's root?");

  Problems duplicates;
  check_unique(rgb_dir, rgb, duplicates);
  check_unique(aux_dir, aux, duplicates);
  if (need_gt) check_unique(gt_dir, gt, duplicates);
  duplicates.raise(quoted(root), "stems used by more than one file");
  Problems unpaired;
  check_partners(rgb_dir, rgb, aux_dir, aux, unpaired);
  check_partners(aux_dir, aux, rgb_dir, rgb, unpaired);
  if (need_gt) {
    check_partners(rgb_dir, rgb, gt_dir, gt, unpaired);
    check_partners(gt_dir, gt, rgb_dir, rgb, unpaired);
  }
  unpaired.raise(quoted(root), "images without a partner");

  std::vector<PairedItem> items;
  items.reserve(rgb.size());
  for (const auto& [stem, names] : rgb) {  // std::map: sorted by id, byte order
    PairedItem item;
    item.id = stem;
    item.rgb = (rgb_dir / names.front()).string();
    item.aux = (aux_dir / aux.at(stem).front()).string();
    if (need_gt) item.gt = (gt_dir / gt.at(stem).front()).string();
    items.push_back(std::move(item));
  }
  return items;
}

std::vector<PairedItem> discover_sunrgbd(const std::string& root_path, const std::string& split_file) {
  const std::string layout = "a SUN-RGBD root holds image/, depth/ and label/, one image per id in each";
  const fs::path root(root_path);
  require_root(root, layout);
  std::error_code ec;
  if (!fs::is_regular_file(split_file, ec))
    throw std::runtime_error("'" + split_file + "': no such file (the split list: one id per line, '#' starts a comment)");
  std::ifstream in(split_file);
  if (!in) throw std::runtime_error("'" + split_file + "': cannot open the split list (check its permissions)");

  struct Entry {
    std::string id;
    int line;
  };
  std::vector<Entry> entries;
  std::map<std::string, int> first_line;
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    const std::string id = trim(text.substr(0, text.find('#')));
    if (id.empty()) continue;
    const std::string where = "'" + split_file + "' line " + std::to_string(line) + ": ";
    if (id.find_first_of(" \t\f\v") != std::string::npos)
      throw std::runtime_error(where + "'" + id + "' holds more than one word (one id per line)");
    const auto [it, fresh] = first_line.emplace(id, line);
    if (!fresh)
      throw std::runtime_error(where + "'" + id + "' is listed again (first on line " + std::to_string(it->second) + ")");
    entries.push_back({id, line});
  }
  if (in.bad()) throw std::runtime_error("'" + split_file + "': cannot read the split list (I/O error)");
  if (entries.empty()) throw std::runtime_error("'" + split_file + "': lists no ids (one id per line, '#' starts a comment)");

  const fs::path dirs[3] = {require_folder(root, "image", layout), require_folder(root, "depth", layout),
                            require_folder(root, "label", layout)};
  const Index indices[3] = {index_folder(dirs[0]), index_folder(dirs[1]), index_folder(dirs[2])};
  Problems problems;
  std::vector<PairedItem> items;
  items.reserve(entries.size());
  for (const Entry& e : entries) {
    std::string paths[3];
    for (int k = 0; k < 3; ++k) {
      const auto found = indices[k].find(e.id);
      if (found == indices[k].end())
        problems.add("'" + split_file + "' line " + std::to_string(e.line) + ": '" + e.id + "' has no image in " +
                     quoted(dirs[k]) + " (looked for " + e.id + kLooked + ")");
      else if (found->second.size() > 1)
        problems.add(ambiguous(dirs[k], e.id, found->second));
      else
        paths[k] = (dirs[k] / found->second.front()).string();
    }
    items.push_back({e.id, paths[0], paths[1], paths[2]});
  }
  problems.raise("'" + split_file + "'", "problems with the listed ids");
  return items;
}

}  // namespace umrflow::image2d
