#pragma once
// Shared by every libFuzzer harness (tests/fuzz/fuzz_*.cpp) and by the regression replay
// (replay_main.cpp, built without libFuzzer so the normal test suite runs it).
//
// The contract a harness checks: any input either parses or is refused with ropekit::Error, the
// one exception type whose message reaches the user as a clear one-line error. Anything else
// (a crash, a sanitizer report, another exception type, which a tool would print as "internal
// error") is a finding, so it is turned into an abort that libFuzzer records.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

#include "ropekit/core/error.hpp"

namespace ropekit::fuzz {

// Inputs past this size are not interesting (every format's structure fits well below it) and
// only slow the fuzzer down.
inline constexpr std::size_t kMaxInput = 1 << 20;

template <class Body>
void expect_clean_refusal(const char* harness, Body&& body) {
    try {
        body();
    } catch (const Error&) {
        // The expected outcome for a bad input: a clear message and exit code 1 or 2.
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "%s: std::bad_alloc escaped (an unchecked size in the input?)\n",
                     harness);
        std::abort();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: unexpected exception escaped: %s\n", harness, e.what());
        std::abort();
    }
}

// The input bytes as a file in memory (memfd), so a reader maps them exactly as it maps a file on
// disk. path() is /proc/self/fd/N; closed on destruction.
class MemoryFile {
  public:
    MemoryFile(const char* name, const std::uint8_t* data, std::size_t size)
        : fd_(memfd_create(name, MFD_CLOEXEC)) {
        if (fd_ < 0) std::abort();
        for (std::size_t done = 0; done < size;) {
            const ssize_t put = write(fd_, data + done, size - done);
            if (put <= 0) std::abort();
            done += static_cast<std::size_t>(put);
        }
    }
    ~MemoryFile() { close(fd_); }
    MemoryFile(const MemoryFile&) = delete;
    MemoryFile& operator=(const MemoryFile&) = delete;
    std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

  private:
    int fd_;
};

}  // namespace ropekit::fuzz

// Defined by each fuzz_*.cpp.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
