// Fuzz target: the NIfTI reader. Any file must give a volume or a
// std::exception, with no allocation beyond what its header can back.
#include <stdexcept>

#include "fuzz_input.h"
#include "io/nifti.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = umrflow::fuzz::as_file(data, size, ".nii");
  try {
    umrflow::io::read_nifti_shape(path);
    umrflow::io::read_nifti(path);
  } catch (const std::exception&) {
  }
  return 0;
}
