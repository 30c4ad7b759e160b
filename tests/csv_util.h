// csv_util.h: reading back the comma-separated reports that nodes write.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace umrflow::test {

/// The cells of a comma-separated text, row by row (no quoting, as the reports write them).
inline std::vector<std::vector<std::string>> csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    rows.emplace_back();
    std::istringstream l(line);
    for (std::string c; std::getline(l, c, ',');) rows.back().push_back(c);
  }
  return rows;
}

}  // namespace umrflow::test
