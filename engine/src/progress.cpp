#include "progress.h"

#include <cstdio>

namespace umrflow {

Progress::Progress(std::string label, std::int64_t total, bool terminal, std::function<void(const std::string&)> log)
    : label_(std::move(label)),
      total_(total),
      terminal_(terminal),
      log_(std::move(log)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

std::string Progress::clock(double seconds) {
  long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

std::string Progress::line(const std::string& suffix) const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  const double eta = rate > 0 ? (total_ - done_) / rate : 0.0;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s %lld/%lld  %.2f it/s  elapsed %s  ETA %s", label_.c_str(),
                static_cast<long long>(done_), static_cast<long long>(total_), rate, clock(elapsed).c_str(),
                clock(eta).c_str());
  return std::string(buf) + (suffix.empty() ? "" : "  " + suffix);
}

void Progress::advance(std::int64_t n, const std::string& suffix) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (terminal_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
    last_draw_ = now;
    const int width = 24;
    const int filled = total_ > 0 ? static_cast<int>(width * done_ / total_) : 0;
    std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
    std::fprintf(stderr, "\r\033[K%s%s", bar.c_str(), line(suffix).c_str());
    std::fflush(stderr);
  } else {
    // Off a terminal: a line at each tenth of the way, so logs stay readable.
    const int decile = total_ > 0 ? static_cast<int>(10 * done_ / total_) : 10;
    if (decile > last_decile_ && decile < 10) {
      last_decile_ = decile;
      log_(line(suffix));
    }
  }
}

void Progress::finish(const std::string& suffix) {
  if (terminal_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  log_(line(suffix));
}

}  // namespace umrflow
