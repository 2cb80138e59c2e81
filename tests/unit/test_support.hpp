#pragma once
// What many unit tests need: a scratch directory removed afterwards, and checks on the errors
// the library throws.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <initializer_list>
#include <iterator>
#include <string>

#include "ropekit/core/error.hpp"

namespace ropekit::test {

class TempDir {
  public:
    TempDir() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "ropekit-unit-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::string file(const std::string& name) const { return (path_ / name).string(); }
    std::size_t entries() const {
        return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(path_),
                                                      std::filesystem::directory_iterator()));
    }

  private:
    std::filesystem::path path_;
};

// The message of the ropekit::Error that f throws, after checking its exit code; "no error"
// when f returns.
template <class F>
std::string error_of(F&& f, ExitCode code = ExitCode::data) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(e.code() == code);
        return e.what();
    }
    return "no error";
}

// Expects f to throw an Error with `code` whose message contains every fragment.
template <class F>
void expect_error(F&& f, ExitCode code, std::initializer_list<const char*> fragments) {
    const std::string message = error_of(f, code);
    INFO(message);
    CHECK(message != "no error");
    for (const char* fragment : fragments) CHECK(message.find(fragment) != std::string::npos);
}

}  // namespace ropekit::test
