#pragma once
// One error type for the whole toolkit. Every failure a user can cause is an Error carrying the
// exit code it maps to and a one-line message "file: dataset: what was expected".
#include <stdexcept>
#include <string>

namespace ropekit {

enum class ExitCode : int { ok = 0, data = 1, usage = 2 };

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

}  // namespace ropekit
