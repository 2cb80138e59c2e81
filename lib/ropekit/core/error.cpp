#include "ropekit/core/error.hpp"

namespace ropekit {

Error data_error(const std::string& file, const std::string& dataset, const std::string& what) {
    std::string message;
    for (const std::string* part : {&file, &dataset}) {
        if (!part->empty()) message += *part + ": ";
    }
    return Error(ExitCode::data, message + what);
}

Error usage_error(const std::string& what) {
    return Error(ExitCode::usage, what);
}

Error check_failed_error(const std::string& what) {
    return Error(ExitCode::check_failed, what);
}

}  // namespace ropekit
