// `umrflow verify`: reads checkpoints, state dicts, caches and folders of BraTS
// cases whole and says whether they are intact, before a long run trusts them.
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "brats/brats.h"
#include "builtin.h"
#include "io/h5cache.h"
#include "io/state_dict.h"
#include "umrflow/archive_check.h"
#include "umrflow/digest.h"

namespace umrflow::nodes {

namespace {

std::string magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(8, '\0');
  in.read(head.data(), 8);
  head.resize(static_cast<std::size_t>(in.gcount()));
  return head;
}

/// The first tensor that holds NaN or infinity, or "".
std::string first_non_finite(const io::NamedTensors& tensors) {
  for (const auto& [k, t] : tensors)
    if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>()) return k;
  return "";
}

void case_progress(std::int64_t i, std::int64_t n) {
  std::fprintf(stderr, "\r  case %lld/%lld", static_cast<long long>(i), static_cast<long long>(n));
  if (i == n) std::fprintf(stderr, "\r%*s\r", 24, "");
}

std::string verify_one(const std::string& path, const std::vector<std::string>& modalities) {
  if (std::filesystem::is_directory(path)) return brats::verify_cases(path, modalities, isatty(2) ? case_progress : nullptr);
  const std::string head = magic(path);
  if (head.rfind("PK", 0) == 0) {
    const ArchiveCheck c = check_zip_archive(path);
    const bool ledger = check_recorded_digest(path);
    io::NamedTensors tensors;
    std::string kind = "PyTorch state dict";
    torch::serialize::InputArchive a;
    bool run_checkpoint = true;
    try {
      a.load_from(path);
    } catch (const std::exception&) {
      run_checkpoint = false;
    }
    if (run_checkpoint) {
      kind = "run checkpoint";
      for (const auto& k : a.keys()) {
        torch::Tensor t;
        if (k != "optimizer" && a.try_read(k, t)) tensors.emplace_back(k, t);
      }
      torch::Tensor epoch;
      if (a.try_read("umrflow.epoch", epoch)) kind += " after epoch " + std::to_string(epoch.item<std::int64_t>());
    } else {
      tensors = io::read_state_dict(path);
    }
    if (const std::string bad = first_non_finite(tensors); !bad.empty())
      throw std::runtime_error("tensor '" + bad + "' holds NaN or infinite values (the run that wrote it diverged)");
    return kind + ": " + std::to_string(c.verified) + " of " + std::to_string(c.records) + " records pass CRC-32, " +
           std::to_string(tensors.size()) + " tensors, all finite" +
           (ledger ? ", SHA-256 as in " + digest_ledger_for(path) : "");
  }
  if (head == std::string("\x89HDF\r\n\x1a\n", 8)) {
    io::CacheReader cache(path);
    std::int64_t voxels = 0;
    for (std::size_t i = 0; i < cache.cases().size(); ++i) {
      const auto& s = cache.cases()[i].stored_shape;
      auto [image, label] = cache.read(i, {0, 0, 0}, {s[1], s[2], s[3]});
      if (!torch::isfinite(image).all().item<bool>())
        throw std::runtime_error("case '" + cache.cases()[i].id + "': the image holds NaN or infinite values");
      voxels += image.numel();
    }
    return "umrflow cache: " + std::to_string(cache.cases().size()) + " cases read whole (" + std::to_string(voxels) +
           " image values), chunk checksums verified where the file has them";
  }
  throw std::runtime_error("neither a torch archive (checkpoint, state dict), an HDF5 cache nor a folder of BraTS cases");
}

int verify_files(const std::vector<std::string>& files, const std::vector<std::string>& modalities) {
  int code = 0;
  for (const auto& f : files) {
    try {
      const std::string what = verify_one(f, modalities);
      std::printf("%s: ok, %s\n", f.c_str(), what.c_str());
    } catch (const std::exception& e) {
      std::printf("%s: DAMAGED: %s\n", f.c_str(), e.what());
      code = 1;
    }
  }
  return code;
}

}  // namespace

void register_verify_verb(Registry& registry) {
  VerbSpec v;
  v.path = {"verify"};
  v.summary = "check checkpoints, state dicts, caches and BraTS case folders for damage (CRC-32, checksums, NaN, grids, labels)";
  v.options = {
      param::texts("files", std::nullopt, "run checkpoints (*.pt), PyTorch state dicts, HDF5 caches (*.h5), or folders of BraTS cases"),
      param::texts("modalities", brats::default_modalities(),
                   "for a folder of cases: the scans every case must have (BraTS 2023's t2f, t1c, t1n, t2w count as flair, t1ce, t1, t2)"),
  };
  v.positional = {"files"};
  v.existing_files = {"files"};
  v.comma_lists = {"modalities"};
  v.footer =
      "Prints one line a file: ok with what was checked, or DAMAGED with the first problem. A folder of BraTS cases is\n"
      "read case by case as a run reads it (every scan, the label where there is one); its line counts the cases and\n"
      "names up to ten bad ones with their reasons. Exit status 1 if anything is damaged or bad.\n"
      "Examples:\n"
      "  umrflow verify runs/stage3_brats/last.pt data/brats2020.h5\n"
      "  umrflow verify data/BraTS2020_TrainingData";
  v.run = [](const VerbCall& c) { return verify_files(c.options.get_texts("files"), c.options.get_texts("modalities")); };
  registry.add_verb(std::move(v));
}

}  // namespace umrflow::nodes
