#pragma once
// One error type for the whole toolkit. Every failure a user can cause is an Error carrying the
// exit code it maps to and a one-line message "file: dataset: what was expected".
#include <stdexcept>
#include <string>

namespace ropekit {

// check_failed: a check ran on good input and its claim did not hold (rope-verify, rope-decay
// --check). Like diff's and h5diff's "differences found" (1) apart from "trouble" (2), a script
// can tell it from input that could not be read.
enum class ExitCode : int { ok = 0, data = 1, usage = 2, check_failed = 3 };

class Error : public std::runtime_error {
  public:
    Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ExitCode code() const { return code_; }

  private:
    ExitCode code_;
};

// Bad input data or a runtime failure (exit 1). Empty parts are left out of the message.
Error data_error(const std::string& file, const std::string& dataset, const std::string& what);
// A bad command line (exit 2).
Error usage_error(const std::string& what);
// A check that ran and failed (exit 3).
Error check_failed_error(const std::string& what);

}  // namespace ropekit
