// parity.h: reads the authors' parity vectors (../shared/reference/
// unimrseg_parity_vectors.h5, beside the project) for tests that must compute
// the same function as the released PyTorch modules.
#pragma once

#include <hdf5.h>

#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "test_paths.h"

namespace umrflow::test {

inline std::string parity_file() { return std::string(UMRFLOW_SOURCE_DIR) + "/../shared/reference/unimrseg_parity_vectors.h5"; }
inline bool have_parity() { return std::filesystem::exists(parity_file()); }

/// A dataset as a tensor (float32, or int64 for integer data), or undefined when absent.
inline torch::Tensor parity(const std::string& name) {
  if (!have_parity()) return {};
  hid_t f = H5Fopen(parity_file().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  torch::Tensor t;
  if (H5Lexists(f, name.c_str(), H5P_DEFAULT) > 0) {
    hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hid_t type = H5Dget_type(d);
    hsize_t dims[8];
    const int rank = H5Sget_simple_extent_dims(s, dims, nullptr);
    const bool integer = H5Tget_class(type) == H5T_INTEGER;
    t = torch::empty(std::vector<std::int64_t>(dims, dims + rank), integer ? torch::kInt64 : torch::kFloat32);
    H5Dread(d, integer ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr());
    H5Tclose(type);
    H5Sclose(s);
    H5Dclose(d);
  }
  H5Fclose(f);
  return t;
}

/// Names of the datasets under `group`/state_dict.
inline std::vector<std::string> parity_keys(const std::string& group) {
  std::vector<std::string> keys;
  hid_t f = H5Fopen(parity_file().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  H5Ovisit(
      f, H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t, const char* name, const H5O_info_t* info, void* out) -> herr_t {
        if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(out)->push_back(name);
        return 0;
      },
      &keys);
  H5Fclose(f);
  std::vector<std::string> out;
  const std::string prefix = group + "/state_dict/";
  for (const auto& k : keys)
    if (k.rfind(prefix, 0) == 0) out.push_back(k.substr(prefix.size()));
  return out;
}

/// Copies `group`'s state dict into `module`; fails the test when a name is on
/// one side only or a shape differs (the names are the authors').
inline void load_parity_state(torch::nn::Module& module, const std::string& group) {
  std::map<std::string, torch::Tensor> mine;
  for (auto& p : module.named_parameters()) mine[p.key()] = p.value();
  for (auto& b : module.named_buffers()) mine[b.key()] = b.value();
  const auto keys = parity_keys(group);
  EXPECT_EQ(keys.size(), mine.size()) << group;
  torch::NoGradGuard no_grad;
  for (const auto& k : keys) {
    auto it = mine.find(k);
    if (it == mine.end()) {
      ADD_FAILURE() << group << ": the module has no tensor named " << k;
      continue;
    }
    torch::Tensor v = parity(group + "/state_dict/" + k);
    ASSERT_EQ(v.sizes(), it->second.sizes()) << k;
    it->second.copy_(v.to(it->second.dtype()));
  }
}

}  // namespace umrflow::test
