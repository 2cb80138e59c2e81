#pragma once
// Progress of a long run on stderr, for every tool (RunContext::progress): on a terminal one line
// updated in place with the rate and the time left; otherwise a plain line at most every few
// seconds, and one at the end. --quiet hides progress (never warnings or errors).
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>

namespace ropekit {

// Seconds between plain lines: ROPEKIT_PROGRESS_EVERY when set to a whole number (tests, and logs
// that want more or fewer lines), else 5.
std::chrono::seconds plain_progress_interval();

class ProgressLine {
  public:
    // `tool` prefixes each line; `interactive`: stderr is a terminal.
    ProgressLine(std::string tool, bool interactive, std::FILE* stream = stderr,
                 std::chrono::seconds plain_every = std::chrono::seconds(5));

    // `done` of `total` `units` ("pairs", "layers"). Cheap when nothing is due. Other units or
    // another total start a new phase, with its own rate and time left.
    void update(std::size_t done, std::size_t total, const std::string& units);

  private:
    using Clock = std::chrono::steady_clock;
    std::string line(std::size_t done, std::size_t total, const std::string& units) const;

    std::string tool_;
    bool interactive_;
    std::FILE* stream_;
    std::chrono::seconds plain_every_;
    std::string units_;
    std::size_t total_ = 0;
    Clock::time_point start_ = Clock::now();
    Clock::time_point last_ = start_;    // the last line written
    Clock::time_point called_ = start_;  // the last update: where a new phase starts
};

}  // namespace ropekit
