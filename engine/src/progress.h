// progress.h (engine-internal): a progress bar on a terminal, log lines elsewhere.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace umrflow {

class Progress {
 public:
  /// `log` receives plain lines (and is used for everything when not on a terminal).
  Progress(std::string label, std::int64_t total, bool terminal, std::function<void(const std::string&)> log);
  /// Advances by `n` units; redraws at most ten times a second.
  void advance(std::int64_t n = 1, const std::string& suffix = "");
  /// Clears the bar (terminal) or prints a final line.
  void finish(const std::string& suffix = "");

  /// "1:02:03" or "2:03".
  static std::string clock(double seconds);

 private:
  std::string line(const std::string& suffix) const;
  std::string label_;
  std::int64_t total_, done_ = 0;
  bool terminal_;
  std::function<void(const std::string&)> log_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_decile_ = 0;
};

}  // namespace umrflow
