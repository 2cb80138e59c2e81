#include "ropekit/cli/progress.hpp"

#include <cstdlib>
#include <utility>

#include <fmt/format.h>

namespace ropekit {

std::chrono::seconds plain_progress_interval() {
    const char* text = std::getenv("ROPEKIT_PROGRESS_EVERY");
    if (text == nullptr || *text == '\0') return std::chrono::seconds(5);
    char* end = nullptr;
    const long seconds = std::strtol(text, &end, 10);
    if (*end != '\0' || seconds < 0) return std::chrono::seconds(5);
    return std::chrono::seconds(seconds);
}

ProgressLine::ProgressLine(std::string tool, bool interactive, std::FILE* stream,
                           std::chrono::seconds plain_every)
    : tool_(std::move(tool)),
      interactive_(interactive),
      stream_(stream),
      plain_every_(plain_every) {}

std::string ProgressLine::line(std::size_t done, std::size_t total,
                               const std::string& units) const {
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    std::string text = fmt::format("{}: {} / {} {}", tool_, done, total, units);
    if (total > 0) {
        text += fmt::format(" ({:.0f}%)",
                            100.0 * static_cast<double>(done) / static_cast<double>(total));
    }
    if (rate > 0) text += fmt::format(", {:.3g} {}/s", rate, units);
    if (rate > 0 && done < total) {
        text += fmt::format(", {:.0f} s left", static_cast<double>(total - done) / rate);
    }
    return text;
}

void ProgressLine::update(std::size_t done, std::size_t total, const std::string& units) {
    const auto now = Clock::now();
    if (units != units_ || total != total_) {  // a new phase started when the last ended
        units_ = units;
        total_ = total;
        start_ = called_;
    }
    called_ = now;
    const bool finished = done >= total;
    if (interactive_) {
        // At most ten redraws a second; the last one ends the line.
        if (!finished && now - last_ < std::chrono::milliseconds(100)) return;
        std::fprintf(stream_, "\r\033[K%s%s", line(done, total, units).c_str(),
                     finished ? "\n" : "");
    } else {
        if (!finished && now - last_ < plain_every_) return;
        std::fprintf(stream_, "%s\n", line(done, total, units).c_str());
    }
    std::fflush(stream_);
    last_ = now;
}

}  // namespace ropekit
