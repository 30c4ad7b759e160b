// Fuzz target: the state-dict reader (zip container, CRC-32 check, pickle
// interpreter, tensor rebuilding). Any file must give tensors or a
// std::exception.
#include <stdexcept>

#include "fuzz_input.h"
#include "io/state_dict.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = umrflow::fuzz::as_file(data, size, ".pt");
  try {
    umrflow::io::read_state_dict(path);
  } catch (const std::exception&) {
  }
  return 0;
}
