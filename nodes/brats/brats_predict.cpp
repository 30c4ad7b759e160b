// Predict lists (brats/predict.h) and the two nodes that read them:
// `brats.scans` (the cases' scans) and `brats.write_labels` (their label maps).
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include <unistd.h>

#include "brats/brats.h"
#include "brats/brats_nodes.h"
#include "brats/predict.h"
#include "eval/sod_metrics.h"
#include "io/nifti.h"
#include "umrflow/doc.h"
#include "umrflow/files.h"

namespace umrflow::brats {

namespace fs = std::filesystem;

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

std::string where(const Doc& d) { return d.where().file + ":" + std::to_string(d.where().line); }

/// `pattern` as a regular expression with groups for {id} and {modality}.
std::regex pattern_regex(const std::string& pattern, const std::vector<std::string>& modalities, int* id_group, int* modality_group) {
  const auto id_at = pattern.find("{id}"), modality_at = pattern.find("{modality}");
  if (id_at == std::string::npos || modality_at == std::string::npos)
    throw std::runtime_error("pattern '" + pattern + "' needs both {id} and {modality} (e.g. {id}_{modality}.nii.gz)");
  auto literal = [](const std::string& text) {
    static const std::string special = R"(\^$.|?*+()[]{})";
    std::string out;
    for (char c : text) {
      if (special.find(c) != std::string::npos) out += '\\';
      out += c;
    }
    return out;
  };
  std::string names;
  for (const auto& m : modalities) {
    names += (names.empty() ? "" : "|") + literal(m);
    if (!modality_alias(m).empty()) names += "|" + literal(modality_alias(m));  // the other BraTS naming (t2f for flair, ...)
  }
  std::string re;
  std::size_t pos = 0;
  int group = 0;
  while (pos < pattern.size()) {
    if (pattern.compare(pos, 4, "{id}") == 0) {
      re += "(.+)";
      *id_group = ++group;
      pos += 4;
    } else if (pattern.compare(pos, 10, "{modality}") == 0) {
      re += "(" + names + ")";
      *modality_group = ++group;
      pos += 10;
    } else {
      re += literal(pattern.substr(pos, 1));
      ++pos;
    }
  }
  // The default `.nii.gz` ending also takes plain `.nii` files.
  if (re.size() > 9 && re.compare(re.size() - 9, 9, "\\.nii\\.gz") == 0) re = re.substr(0, re.size() - 9) + "\\.nii(\\.gz)?";
  return std::regex(re);
}

void scan_folder(const fs::path& dir, int depth, const std::regex& re, int id_group, int modality_group,
                 const std::vector<std::string>& modalities, std::map<std::string, PredictCase>& found) {
  std::error_code ec;
  std::vector<fs::directory_entry> entries;
  for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e);
  std::sort(entries.begin(), entries.end());
  for (const auto& entry : entries) {
    if (entry.is_directory()) {
      if (depth > 1) scan_folder(entry.path(), depth - 1, re, id_group, modality_group, modalities, found);
      continue;
    }
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, m, re)) continue;
    const std::string id = m[id_group].str();
    const std::size_t k = modality_index(modalities, m[modality_group].str());
    PredictCase& c = found[id];
    c.id = id;
    c.files.resize(modalities.size());
    if (!c.files[k].empty())
      throw std::runtime_error("case " + id + " has two " + modalities[k] + " files: '" + c.files[k] + "' and '" +
                               entry.path().string() + "'");
    c.files[k] = entry.path().string();
  }
}

}  // namespace

std::string nifti_stem(const std::string& path) {
  for (const std::string ext : {".nii.gz", ".nii"})
    if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0) return path.substr(0, path.size() - ext.size());
  return path;
}

void write_predict_list(const std::string& path, const PredictList& list) {
  std::string text = "# umrflow predict: the cases to segment (docs/predict.md)\nmodalities: [";
  for (std::size_t m = 0; m < list.modalities.size(); ++m) text += (m ? ", " : "") + list.modalities[m];
  text += "]\ncases:\n";
  for (const auto& c : list.cases) {
    text += "  - id: " + quoted(c.id) + "\n    out: " + quoted(c.out) + "\n";
    for (std::size_t m = 0; m < list.modalities.size(); ++m)
      if (m < c.files.size() && !c.files[m].empty()) text += "    " + list.modalities[m] + ": " + quoted(c.files[m]) + "\n";
  }
  write_file_atomically(path, text);
}

PredictList read_predict_list(const std::string& path) {
  const Doc doc = load_yaml_file(path);
  auto fail = [&](const Doc& at, const std::string& why) { throw std::runtime_error(where(at) + ": " + why); };
  if (!doc.is_map()) fail(doc, "a predict list is a map with `modalities` and `cases`");
  PredictList list;
  const Doc* modalities = doc.find("modalities");
  if (!modalities || !modalities->is_sequence() || modalities->items().empty()) fail(doc, "`modalities` must list the channel names");
  for (const auto& m : modalities->items()) list.modalities.push_back(m.text());
  const Doc* cases = doc.find("cases");
  if (!cases || !cases->is_sequence() || cases->items().empty()) fail(doc, "`cases` must list at least one case");
  std::set<std::string> ids, outs;
  for (const auto& item : cases->items()) {
    if (!item.is_map()) fail(item, "a case is a map with id, out and its modality files");
    PredictCase c;
    c.files.resize(list.modalities.size());
    for (const auto& e : item.entries()) {
      if (!e.value.is_scalar()) fail(e.value, "`" + e.key + "` must be a text");
      if (e.key == "id") c.id = e.value.text();
      else if (e.key == "out") c.out = e.value.text();
      else {
        const auto k = std::find(list.modalities.begin(), list.modalities.end(), e.key) - list.modalities.begin();
        if (k == static_cast<std::ptrdiff_t>(list.modalities.size()))
          fail(e.value, "unknown modality '" + e.key + "' (the list's modalities are " + join(list.modalities, ", ") + ")");
        c.files[k] = e.value.text();
      }
    }
    if (c.id.empty()) fail(item, "a case needs an `id`");
    if (c.out.empty()) fail(item, "case " + c.id + " needs an `out` path");
    if (nifti_stem(c.out) == c.out) fail(item, "case " + c.id + ": `out` must end in .nii.gz or .nii, not '" + c.out + "'");
    if (std::all_of(c.files.begin(), c.files.end(), [](const std::string& f) { return f.empty(); }))
      fail(item, "case " + c.id + " names no modality file");
    if (!ids.insert(c.id).second) fail(item, "case id " + c.id + " is listed twice");
    if (!outs.insert(c.out).second) fail(item, "output '" + c.out + "' is named by two cases");
    list.cases.push_back(std::move(c));
  }
  return list;
}

std::vector<PredictCase> find_predict_cases(const std::string& folder, const std::string& pattern,
                                            const std::vector<std::string>& modalities, const std::string& out_folder) {
  if (!fs::is_directory(folder)) throw std::runtime_error("'" + folder + "': no such folder");
  int id_group = 0, modality_group = 0;
  const std::regex re = pattern_regex(pattern, modalities, &id_group, &modality_group);
  std::map<std::string, PredictCase> found;
  scan_folder(folder, 3, re, id_group, modality_group, modalities, found);
  if (found.empty())
    throw std::runtime_error("no file under '" + folder + "' matches '" + pattern + "' with a modality in " + join(modalities, ", ") +
                             " (set --pattern to your file names; BraTS 2023 on: --pattern '{id}-{modality}.nii.gz')");
  std::vector<PredictCase> out;
  for (auto& [id, c] : found) {
    c.out = (fs::path(out_folder) / (id + ".nii.gz")).string();
    out.push_back(std::move(c));
  }
  return out;
}

void BratsScans::setup() {
  const PredictList list = read_predict_list(list_);
  modalities_ = list.modalities;
  for (const auto& p : list.cases) {
    Case c;
    c.id = p.id;
    c.folder = fs::path(p.out).parent_path().string();
    c.modality_files = p.files;
    cases_.push_back(std::move(c));
  }
}

Packet BratsScans::load(std::int64_t index, Context&) {
  const Case& c = cases_.at(index);
  LoadedCase l;
  try {
    l = read_case(c, modalities_, {}, false, /*allow_missing=*/true);
  } catch (const std::exception& e) {
    throw std::runtime_error("case " + c.id + ": " + e.what());
  }
  Packet p;
  p.tensors["image"] = l.image;
  p.tensors["affine"] = torch::from_blob(l.affine.data(), {4, 4}, torch::kFloat64).clone();
  SampleMeta meta;
  meta.id = c.id;
  meta.tags["shape"] = {l.image.size(1), l.image.size(2), l.image.size(3)};
  meta.tags["present"] = l.present;
  p.samples.push_back(std::move(meta));
  return p;
}

namespace {

/// `part` (x, y, z) placed at `start` in a zero volume of `shape` (the part of
/// it that falls inside).
torch::Tensor paste(const torch::Tensor& part, const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& shape) {
  torch::Tensor out = torch::zeros(shape, part.options());
  torch::Tensor dst = out, src = part;
  for (int a = 0; a < 3; ++a) {
    const std::int64_t lo = std::max<std::int64_t>(0, start[a]), hi = std::min(shape[a], start[a] + part.size(a));
    if (hi <= lo) return out;
    dst = dst.narrow(a, lo, hi - lo);
    src = src.narrow(a, lo - start[a], hi - lo);
  }
  dst.copy_(src);
  return out;
}

/// Writes through a temporary file beside `path`, renamed into place.
void write_in_place(const std::string& path, const torch::Tensor& data, const std::string& reference, int datatype) {
  const fs::path target(path);
  const std::string ext = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0 ? ".nii.gz" : ".nii";
  const fs::path tmp = target.parent_path() / (".umrflow-partial-" + std::to_string(::getpid()) + "-" + nifti_stem(target.filename().string()) + ext);
  try {
    io::write_nifti_like(tmp.string(), data, reference, datatype);
    commit_file(tmp.string(), path);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    std::string why = e.what();
    for (std::size_t at = 0; (at = why.find(tmp.string(), at)) != std::string::npos; at += path.size()) why.replace(at, tmp.string().size(), path);
    throw std::runtime_error("writing '" + path + "': " + why);
  }
}

}  // namespace

void WriteLabels::setup() {
  for (const auto& r : regions_)
    if (std::find(region_names().begin(), region_names().end(), r) == region_names().end())
      throw std::invalid_argument("unknown region '" + r + "' (TC, WT, ET, NCR, ED)");
  for (const auto& c : read_predict_list(list_).cases) {
    const auto first = std::find_if(c.files.begin(), c.files.end(), [](const std::string& f) { return !f.empty(); });
    outputs_[c.id] = {c.out, *first};
  }
}

Packet WriteLabels::run(const std::vector<Packet>& in, Context&) {
  const torch::Tensor logits = metrics::require_finite_output(in.at(0).at("logits").detach().to(torch::kCPU).to(torch::kFloat32), "logits");
  const auto& samples = in.at(1).samples;
  if (logits.size(0) != static_cast<std::int64_t>(samples.size()) || logits.size(1) != static_cast<std::int64_t>(regions_.size()))
    throw std::runtime_error("logits " + c10::str(logits.sizes()) + " do not hold " + std::to_string(regions_.size()) +
                             " regions for each of the batch's " + std::to_string(samples.size()) + " case(s)");
  double labelled = 0, voxels = 0;
  for (std::size_t b = 0; b < samples.size(); ++b) {
    const SampleMeta& meta = samples[b];
    auto it = outputs_.find(meta.id);
    if (it == outputs_.end()) throw std::runtime_error("case " + meta.id + " is not in the predict list '" + list_ + "'");
    const std::string &out = it->second[0], &reference = it->second[1];
    const torch::Tensor prob = torch::sigmoid(logits[b]);
    std::vector<std::int64_t> shape(prob.sizes().begin() + 1, prob.sizes().end()), start(3, 0);
    if (meta.tags.count("shape")) shape = meta.tags.at("shape");
    if (meta.tags.count("foreground_start")) start = meta.tags.at("foreground_start");
    const torch::Tensor labels = paste(regions_to_labels(prob > threshold_, regions_, static_cast<std::uint8_t>(et_label_)), start, shape);
    // The label map last: a case whose map exists is complete.
    if (probabilities_)
      for (std::size_t r = 0; r < regions_.size(); ++r)
        write_in_place(nifti_stem(out) + "_" + regions_[r] + ".nii.gz", paste(prob[r], start, shape), reference, io::dtype::float32);
    write_in_place(out, labels, reference, io::dtype::uint8);
    labelled += (labels > 0).sum().item<double>();
    voxels += static_cast<double>(labels.numel());
    ++written_;
  }
  Packet p;
  p.tensors["foreground"] = torch::tensor(voxels > 0 ? labelled / voxels : 0.0, torch::kFloat32);
  return p;
}

std::map<std::string, double> WriteLabels::finish(const std::string&) { return {{"cases", static_cast<double>(written_)}}; }

}  // namespace umrflow::brats
